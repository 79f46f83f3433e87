"""An HTTP connection that stops reading while its responses are not being read (admin and SQS listeners)."""

from __future__ import annotations

from twisted.web.http import HTTPChannel

from kestrel.protocols.sending import no_delay


class PacedChannel(HTTPChannel):
    """
    An HTTP connection that answers no further pipelined request while its responses are not
    being read. Twisted's channel stops reading only between requests, and answers every
    request it has already read: a client that pipelines `GET /stats` and reads nothing makes
    it buffer responses without end. Here, once the transport holds more than it buffers,
    reading stops and the requests already read wait (`paused` stops LineReceiver's parsing)
    until the responses have gone out.
    """

    def connectionMade(self) -> None:
        no_delay(self.transport)
        super().connectionMade()

    def pauseProducing(self) -> None:
        self.paused = True
        super().pauseProducing()
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        super().resumeProducing()
        # Parse the requests that waited in the buffer.
        self.dataReceived(b"")
