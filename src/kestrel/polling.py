"""
The epoll reactor's poll, with the same logging context made cheaper (issue 11).

For every ready descriptor, Twisted's `EPollReactor.doPoll` calls `log.callWithLogger`: the
selectable's `logPrefix()`, then the legacy logging context (`twisted.python.context`) with
`{"system": prefix}` pushed for the call, through five interpreted calls. Under `db` that
was about 1.3 us of the 12-13 us a request costs the server: every request is one read
event. `Poller` does the same per event (the same prefix, the same context dict pushed on
the same stack for the call, the same `log.err(system=prefix)` for what escapes) in one
compiled loop, and leaves the rest to the reactor's own `_doReadOrWrite`.

`install` puts it in place of `doIteration` on a reactor that is exactly Twisted's
`EPollReactor`; any other reactor (the tests' fakes, select, poll) keeps its own.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.python import context, log
from twisted.python.log import ILogContext


def install(reactor: Any) -> bool:
    """Poll `reactor` with a `Poller` if it is Twisted's epoll reactor; whether it was."""
    try:
        from twisted.internet.epollreactor import EPollReactor
    except ImportError:  # no epoll on this platform
        return False
    if type(reactor) is not EPollReactor or isinstance(reactor.__dict__.get("doIteration"), Poller):
        return False
    reactor.doIteration = Poller(reactor)  # type: ignore[method-assign]
    return True


class Poller:
    """`EPollReactor.doPoll` for one reactor, called as its `doIteration(timeout)`."""

    def __init__(self, reactor: Any):
        self.reactor = reactor

    def __call__(self, timeout: float | None) -> None:
        reactor = self.reactor
        selectables: dict[int, Any] = reactor._selectables
        if timeout is None:
            timeout = -1  # wait indefinitely
        try:
            # As Twisted does: no more events than descriptors it watches.
            events: list[tuple[int, int]] = reactor._poller.poll(timeout, len(selectables))
        except OSError as error:
            if error.errno == errno.EINTR:
                return
            raise
        if not events:
            return
        handle = reactor._doReadOrWrite
        # The context stack of this (the reactor's) thread, and the log context that
        # log.callWithContext would copy for each event.
        contexts: list[Any] = context.theContextTracker.currentContext().contexts
        outer: dict[str, Any] = context.get(ILogContext)
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue
            try:
                prefix = selectable.logPrefix()
            except KeyboardInterrupt:
                raise
            except BaseException:
                prefix = "(buggy logPrefix method)"
                log.err(system=prefix)
            logged = outer.copy()
            logged["system"] = prefix
            contexts.append({ILogContext: logged})
            try:
                try:
                    handle(selectable, fd, event)
                finally:
                    contexts.pop()
            except KeyboardInterrupt:
                raise
            except BaseException:
                log.err(system=prefix)
