"""
The epoll reactor's main loop and poll, doing what Twisted's do, made cheaper (issue 11).

Under `db`, every request is one read event, and a reactor turn handles a few of them. Per
turn, Twisted's `ReactorBase.mainLoop` runs `runUntilCurrent` and `timeout` (interpreted,
even when no call is due); per event, `EPollReactor.doPoll` calls `log.callWithLogger` (the
selectable's `logPrefix()`, then the legacy logging context, `twisted.python.context`, with
`{"system": prefix}` pushed for the call, through five interpreted calls), then
`_doReadOrWrite`, `Connection.doRead` and `Connection._dataReceived` before the protocol's
`dataReceived`. Together that was a third of what a request cost the server beyond the
kernel's share (doc/benchmarks.md).

`Loop` runs the reactor's loop: a turn with nothing due (no call from another thread, no new
or due timed call, nothing cancelled to clean out, no shutdown pending) skips
`runUntilCurrent`, and the timeout comes from the head of the timed calls, as `timeout()`
computes it; any other turn calls Twisted's own. `Poller` does the poll: the same prefix and
the same context pushed for each event, the same `log.err(system=prefix)` for what escapes,
and for a readable accepted TCP connection (exactly `twisted.internet.tcp.Server`, whose
`logPrefix`, `doRead` and `_dataReceived` are known) their work in line: one `recv`, the data
to the protocol, an empty read or a socket error to `_disconnectSelectable` as
`_doReadOrWrite` would. Every other event goes to the reactor's `_doReadOrWrite`.

`install` puts both in place on a reactor that is exactly Twisted's `EPollReactor`; any other
reactor (the tests' fakes, select, poll) keeps its own. Both read the reactor's private
attributes, so test_polling.py runs them against Twisted's own on the same events.
"""

from __future__ import annotations

import errno
from math import inf
from select import EPOLLIN
from typing import Any, Final

from twisted.internet import base, main, posixbase, tcp
from twisted.python import context, log
from twisted.python.log import ILogContext

# The longest epoll_wait timeout, as ReactorBase.timeout bounds it (a C int of milliseconds).
LONGEST_TIMEOUT: Final = 2147483.0
# ReactorBase.runUntilCurrent rebuilds its heap once more than this many calls are cancelled.
CANCELLATIONS_TO_CLEAN: Final = 50
RUN_DUE_CALLS: Final = -1.0


def install(reactor: Any) -> bool:
    """Run `reactor` with a `Loop` and a `Poller` if it is Twisted's epoll reactor; whether it was."""
    try:
        from twisted.internet.epollreactor import EPollReactor
    except ImportError:  # no epoll on this platform
        return False
    if type(reactor) is not EPollReactor or isinstance(reactor.__dict__.get("doIteration"), Poller):
        return False
    reactor.doIteration = Poller(reactor)  # type: ignore[method-assign]
    reactor.mainLoop = Loop(reactor)  # type: ignore[method-assign]
    return True


class Loop:
    """`ReactorBase.mainLoop` for one reactor."""

    def __init__(self, reactor: Any):
        self.reactor = reactor

    def __call__(self) -> None:
        reactor = self.reactor
        while reactor._started:
            try:
                wait = self._wait_if_nothing_due()
                if wait == RUN_DUE_CALLS:
                    reactor.runUntilCurrent()
                    timeout = reactor.timeout()
                else:
                    timeout = None if wait == inf else min(LONGEST_TIMEOUT, wait)
                reactor.doIteration(timeout if reactor.running else 0)
            except BaseException as error:
                # As `with _topHandler:` in mainLoop: log it and go on.
                base._topHandler.__exit__(type(error), error, error.__traceback__)
        base._log.info("Main loop terminated.")

    def _wait_if_nothing_due(self) -> float:
        """
        When runUntilCurrent would do nothing this turn, the seconds until the next timed
        call (inf: none); otherwise RUN_DUE_CALLS, and the turn is Twisted's own.
        """
        reactor = self.reactor
        if reactor.threadCallQueue or reactor._newTimedCalls or reactor._justStopped:
            return RUN_DUE_CALLS
        if reactor._cancellations > CANCELLATIONS_TO_CLEAN:
            return RUN_DUE_CALLS
        pending: list[Any] = reactor._pendingTimedCalls
        if not pending:
            return inf
        wait: float = pending[0].time - reactor.seconds()
        return wait if wait > 0 else RUN_DUE_CALLS


class Poller:
    """`EPollReactor.doPoll` for one reactor, called as its `doIteration(timeout)`."""

    def __init__(self, reactor: Any):
        self.reactor = reactor
        # The context stack of the reactor's thread (twisted.python.context keeps one per
        # thread, and the list stays the same object), found on the first poll.
        self._contexts: list[dict[Any, Any]] | None = None

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
        contexts = self._contexts
        if contexts is None:
            contexts = self._contexts = context.theContextTracker.currentContext().contexts
        outer = current_log_context(contexts)
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue
            accepted = type(selectable) is tcp.Server
            if accepted:
                prefix = selectable.logstr  # tcp.Connection.logPrefix
            else:
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
                    if accepted and event == EPOLLIN:
                        read_accepted(reactor, selectable)
                    else:
                        handle(selectable, fd, event)
                finally:
                    contexts.pop()
            except KeyboardInterrupt:
                raise
            except BaseException:
                log.err(system=prefix)


def read_accepted(reactor: Any, connection: Any) -> None:
    """
    A read event of an accepted TCP connection, as `_doReadOrWrite` with its `doRead` and
    `_dataReceived` handles it: data goes to the protocol; an empty read (the peer closed) or
    a socket error ends the connection; an exception from the protocol is logged and ends it.
    """
    reason: Any = None
    try:
        if connection.fileno() == -1:
            reason = posixbase._NO_FILEDESC
        else:
            try:
                data = connection.socket.recv(connection.bufferSize)
            except OSError as error:
                if error.errno != errno.EWOULDBLOCK:
                    reason = main.CONNECTION_LOST
            else:
                if data:
                    connection.protocol.dataReceived(data)
                else:
                    reason = main.CONNECTION_DONE
    except BaseException as error:
        reason = error
        log.err()
    if reason:
        reactor._disconnectSelectable(connection, reason, True)


def current_log_context(contexts: list[dict[Any, Any]]) -> dict[str, Any]:
    """
    The log context that log.callWithContext copies for each event: `context.get(ILogContext)`
    on the reactor's thread, the newest context that has one, read here without its three
    interpreted calls. (twisted.python.log sets a default one at the bottom of every stack.)
    """
    index = len(contexts) - 1
    while index >= 0:  # (not `for ... in reversed(...)`, which mypyc 2.4 fails to compile here)
        found = contexts[index].get(ILogContext)
        if found is not None:
            return found
        index -= 1
    return context.get(ILogContext)
