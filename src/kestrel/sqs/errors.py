"""
The one error every layer of the SQS API raises, and the catalog of SQS's error codes that
says how each wire format names it.

Amazon SQS moved from the query protocol to the JSON protocol keeping its query error codes:
a JSON error reply names its error by a shape (`__type`), and carries the query code in the
`x-amzn-query-error` header, which botocore reads (parsers.py, `_do_query_compatible_error_parse`)
so that an SDK reports the same code over either wire. The pairs below are SQS's own: the
error shapes of its API model, and the replies of the live service as recorded for both wires.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class ErrorKind:
    """How SQS answers one error code: its JSON `__type`, its HTTP status, whose fault it is."""

    json_type: str
    status: int = 400
    sender: bool = True


# The errors SQS's API model declares: their JSON type is the shape's name in SQS's namespace.
_SQS = "com.amazonaws.sqs#"
# The errors of the service framework under every AWS JSON API (validation, authentication).
_CORAL = "com.amazon.coral.service#"

CATALOG: dict[str, ErrorKind] = {
    # Modelled errors of the SQS API (botocore's SQS service model, both protocols).
    "AWS.SimpleQueueService.NonExistentQueue": ErrorKind(_SQS + "QueueDoesNotExist"),
    "QueueAlreadyExists": ErrorKind(_SQS + "QueueNameExists"),
    "AWS.SimpleQueueService.QueueDeletedRecently": ErrorKind(_SQS + "QueueDeletedRecently"),
    "AWS.SimpleQueueService.PurgeQueueInProgress": ErrorKind(_SQS + "PurgeQueueInProgress", 403),
    "AWS.SimpleQueueService.BatchEntryIdsNotDistinct": ErrorKind(_SQS + "BatchEntryIdsNotDistinct"),
    "AWS.SimpleQueueService.BatchRequestTooLong": ErrorKind(_SQS + "BatchRequestTooLong"),
    "AWS.SimpleQueueService.EmptyBatchRequest": ErrorKind(_SQS + "EmptyBatchRequest"),
    "AWS.SimpleQueueService.InvalidBatchEntryId": ErrorKind(_SQS + "InvalidBatchEntryId"),
    "AWS.SimpleQueueService.TooManyEntriesInBatchRequest": ErrorKind(_SQS + "TooManyEntriesInBatchRequest"),
    "AWS.SimpleQueueService.MessageNotInflight": ErrorKind(_SQS + "MessageNotInflight"),
    "AWS.SimpleQueueService.UnsupportedOperation": ErrorKind(_SQS + "UnsupportedOperation"),
    "InvalidAttributeName": ErrorKind(_SQS + "InvalidAttributeName"),
    "InvalidAttributeValue": ErrorKind(_SQS + "InvalidAttributeValue"),
    "InvalidMessageContents": ErrorKind(_SQS + "InvalidMessageContents"),
    "ReceiptHandleIsInvalid": ErrorKind(_SQS + "ReceiptHandleIsInvalid"),
    "InvalidIdFormat": ErrorKind(_SQS + "InvalidIdFormat"),
    "InvalidAddress": ErrorKind(_SQS + "InvalidAddress"),
    "InvalidSecurity": ErrorKind(_SQS + "InvalidSecurity"),
    "RequestThrottled": ErrorKind(_SQS + "RequestThrottled"),
    "OverLimit": ErrorKind(_SQS + "OverLimit", 403),
    "ResourceNotFoundException": ErrorKind(_SQS + "ResourceNotFoundException", 404),
    # Request validation, whichever action.
    "InvalidParameterValue": ErrorKind(_CORAL + "InvalidParameterValueException"),
    "MissingParameter": ErrorKind(_CORAL + "MissingRequiredParameterException"),
    "InvalidAction": ErrorKind(_CORAL + "UnknownOperationException"),
    "MissingAction": ErrorKind(_CORAL + "UnknownOperationException"),
    "MalformedQueryString": ErrorKind(_CORAL + "MalformedQueryString"),
    "SerializationException": ErrorKind(_CORAL + "SerializationException"),
    # Authentication and grants (AWS's common errors for Signature Version 4).
    "AccessDenied": ErrorKind(_CORAL + "AccessDeniedException", 403),
    "InvalidClientTokenId": ErrorKind(_CORAL + "UnrecognizedClientException", 403),
    "SignatureDoesNotMatch": ErrorKind(_CORAL + "InvalidSignatureException", 403),
    "IncompleteSignature": ErrorKind(_CORAL + "IncompleteSignatureException"),
    "MissingAuthenticationToken": ErrorKind(_CORAL + "MissingAuthenticationTokenException", 403),
    "RequestExpired": ErrorKind(_CORAL + "RequestExpired"),
    # The server's own trouble.
    "InternalError": ErrorKind(_CORAL + "InternalFailure", 500, sender=False),
    "ServiceUnavailable": ErrorKind(_CORAL + "ServiceUnavailableException", 503, sender=False),
}


def sqs_error(code: str, message: str) -> SqsError:
    """The error ``code`` with its status and fault as the catalog gives them."""
    kind = CATALOG[code]
    return SqsError(code, message, kind.status, kind.sender)


def json_type(error: SqsError) -> str:
    """The JSON protocol's `__type` for an error; a code outside the catalog keeps its last part."""
    kind = CATALOG.get(error.code)
    return kind.json_type if kind else _SQS + error.code.rsplit(".", 1)[-1]


def batch_entry_error(entry_id: str, error: SqsError) -> dict[str, object]:
    """How a batch reports the failure of one entry (`BatchResultErrorEntry`)."""
    return {"Id": entry_id, "SenderFault": error.sender, "Code": error.code, "Message": error.message}
