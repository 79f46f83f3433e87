"""
The parts of Twisted's IReactorTime and IDelayedCall the queue server uses, as typing
Protocols. Zope interfaces declare their methods without `self`, which mypy (and so mypyc,
which compiles the request path) cannot check calls against; these say the same thing.
This module is never compiled: a Protocol is only a type.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol


class Timer(Protocol):
    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...
