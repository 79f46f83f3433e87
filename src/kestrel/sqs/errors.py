"""The one error every layer of the SQS API raises; each wire format renders it its own way."""

from __future__ import annotations


class SqsError(Exception):
    """
    An error reply. ``code`` is the query protocol's error code (``InvalidParameterValue``,
    ``AWS.SimpleQueueService.NonExistentQueue``, ``SignatureDoesNotMatch``), which the JSON
    protocol also sends in its ``x-amzn-query-error`` header; ``sender`` says whose fault it
    is (``Sender`` or ``Receiver`` in the reply).
    """

    def __init__(self, code: str, message: str, status: int = 400, sender: bool = True):
        super().__init__(code, message, status, sender)
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
