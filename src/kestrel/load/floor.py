"""
The floor of Twisted on this machine: a memcache responder that does no queue work. A set is
answered STORED and a get with one fixed item, sent as txkestrel sends its replies
(`kestrel.protocols.sending`). What it costs a request is what Twisted's reactor and the
kernel cost; what txkestrel costs beyond it is its own (issue 11, doc/benchmarks.md).

    python -m kestrel.load.floor PORT

Only what `db` and kestrel.load.pipelined send is understood; it is a measuring stick, not
a server.
"""

from __future__ import annotations

import sys

from twisted.internet.protocol import Factory, Protocol

from kestrel.protocols.sending import no_delay, send_reply, socket_of

ITEM = b"x" * 64


class FloorResponder(Protocol):
    def connectionMade(self) -> None:
        no_delay(self.transport)
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        buffer = self.buffer + data
        replies = []
        while (end := buffer.find(b"\r\n")) >= 0:
            line = buffer[:end]
            if line.startswith(b"set "):
                following = end + 2 + int(line.rsplit(b" ", 1)[1]) + 2
                if len(buffer) < following:
                    break
                buffer = buffer[following:]
                replies.append(b"STORED\r\n")
            else:
                buffer = buffer[end + 2:]
                key = line.split(b" ", 1)[1] if b" " in line else b""
                replies.append(b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(ITEM), ITEM))
        self.buffer = buffer
        if replies:
            send_reply(self.transport, replies, socket_of(self.transport))


def main(argv: list[str] | None = None) -> int:
    from twisted.internet import reactor

    port = int((sys.argv[1:] if argv is None else argv)[0])
    reactor.listenTCP(port, Factory.forProtocol(FloorResponder), interface="127.0.0.1")
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
