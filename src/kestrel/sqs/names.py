"""
Queue names as the SQS API shows them, in URLs and ARNs, and the engine's names behind them.

One queue serves every protocol, so an SQS queue is an engine queue, with one difference of
spelling: SQS names a FIFO queue `orders.fifo`, and the engine cannot take a `.` in a queue
name (a journal file is the queue's name, and a dot starts the suffix of its rotated and
packed files: doc/journal.md). The engine's name of `orders.fifo` is `orders:fifo`, the
name memcache, Thrift and text clients use; `:` never appears in a name SQS allows, so the
two spellings map one to one. Every other name is the same on both sides.

CreateQueue takes SQS's names only: 1 to 80 letters, digits, `-` and `_`, a FIFO queue's
ending in `.fifo`. A queue another protocol made under any other name the engine allows is
still reachable through its URL (percent-encoded where a URL needs it).

Queue URLs are `<base_url>/<account>/<name>`, ARNs `arn:aws:sqs:<region>:<account>:<name>`.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

from kestrel.config import validate_queue_name
from kestrel.sqs.errors import SqsError, sqs_error

FIFO_SUFFIX = ".fifo"
ENGINE_FIFO_SUFFIX = ":fifo"
MAX_NAME_LENGTH = 80
_STANDARD_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_FIFO_NAME = re.compile(r"[A-Za-z0-9_-]{1,75}\.fifo")


def engine_name(name: str) -> str:
    """The engine's name of the SQS queue `name`."""
    if name.endswith(FIFO_SUFFIX):
        return name[: -len(FIFO_SUFFIX)] + ENGINE_FIFO_SUFFIX
    return name


def sqs_name(name: str) -> str:
    """The SQS name of the engine queue `name`."""
    if name.endswith(ENGINE_FIFO_SUFFIX):
        return name[: -len(ENGINE_FIFO_SUFFIX)] + FIFO_SUFFIX
    return name


def is_fifo(name: str) -> bool:
    """Whether the queue `name` (either spelling) is a FIFO queue: SQS tells by the name alone."""
    return name.endswith(FIFO_SUFFIX) or name.endswith(ENGINE_FIFO_SUFFIX)


def check_new_name(name: str, fifo: bool) -> None:
    """SQS's rule for the name CreateQueue gives a queue (a FIFO queue's ends in `.fifo`)."""
    if fifo:
        if not _FIFO_NAME.fullmatch(name):
            raise sqs_error(
                "InvalidParameterValue",
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, "
                f"must end with {FIFO_SUFFIX} suffix and be 1 to {MAX_NAME_LENGTH} in length.",
            )
    elif not _STANDARD_NAME.fullmatch(name):
        raise sqs_error(
            "InvalidParameterValue",
            f"Can only include alphanumeric characters, hyphens, or underscores. 1 to {MAX_NAME_LENGTH} in length",
        )


def queue_url(base_url: str, account: str, name: str) -> str:
    """The URL of the SQS queue `name` on the server the client addressed as `base_url`."""
    return f"{base_url}/{account}/{quote(name, safe='')}"


def name_in_url(url: str, account: str) -> str:
    """
    The SQS name of the queue a URL names. The scheme and host are not looked at (a client
    may reach the server under several); the path must be `/<account>/<name>`.
    """
    parts = urlsplit(url).path.split("/")
    if len(parts) != 3 or parts[0] or not parts[2]:
        raise sqs_error("InvalidAddress", f"The address {url} is not valid for this endpoint.")
    if unquote(parts[1]) != account:
        raise no_such_queue()
    name = unquote(parts[2])
    try:
        validate_queue_name(engine_name(name))
    except ValueError:
        # No queue can have that name.
        raise no_such_queue() from None
    return name


def queue_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def name_in_arn(arn: str, region: str, account: str) -> str | None:
    """The SQS name of the queue an ARN of this server names; None for any other ARN."""
    prefix = f"arn:aws:sqs:{region}:{account}:"
    if not arn.startswith(prefix) or len(arn) == len(prefix):
        return None
    return arn[len(prefix) :]


def no_such_queue() -> SqsError:
    return sqs_error("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")
