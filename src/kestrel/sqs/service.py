"""
SqsService: the SQS API's actions on the server's queues, without HTTP (the twisted.web
resource decodes a request into an SqsCall, authenticates its signer and hands both here).

Decisions (doc/sqs.md):

- Every call goes through one server-wide Session (`track_open_reads=False`, as Thrift's
  handler has): the server's status refuses writes or reads as for any client (SQS's
  ServiceUnavailable), its stats and latencies count SQS calls (the API counts as one
  connection), and on a queue that fsyncs
  every write (`sync_journal = 0`) SendMessage answers once its item is on disk, DeleteMessage
  once its confirm is (group commit).
- One queue, every protocol: an SQS queue is an engine queue (kestrel.sqs.names spells a FIFO
  queue's name for the engine), SQS messages are enveloped items (kestrel.sqs.messages), and
  a queue made by memcache, Thrift or text exists for SQS too. SQS's actions never create a
  queue but CreateQueue.
- Receipt handles, visibility timeouts, delays and FIFO group ordering are reads the service
  holds open with timers (kestrel.sqs.receipts); a restart gives every held message back to
  its queue and leaves old handles stale. Receives are bounded and long polls cancellable
  (kestrel.sqs.receiving).
- Queue attributes are engine settings where they mean the same thing and metadata
  otherwise, both kept in the spool (kestrel.sqs.attributes); so are tags (50 at most).
- Dead letters are the engine's: RedrivePolicy sets `max_deliveries` and `dead_letter_queue`,
  and the item moves on the receive after its maxReceiveCount-th.
- Grants: ReceiveMessage, DeleteMessage(Batch) and ChangeMessageVisibility(Batch) need
  `read`; SendMessage(Batch) `write`; CreateQueue, DeleteQueue, PurgeQueue,
  SetQueueAttributes, TagQueue and UntagQueue `admin`; GetQueueUrl, GetQueueAttributes,
  ListQueueTags and ListDeadLetterSourceQueues any grant on the queue, and ListQueues shows
  the queues the caller has any grant on. Names in grants are SQS's (`orders.fifo`).
- Approximate: PurgeQueue removes what waits and what the service holds, not the open reads
  of memcache, Thrift or text clients; a queue deleted can be created again at once (SQS
  waits 60 s); ReceiveRequestAttemptId is not used; policies are kept, not enforced.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_left, bisect_right
from itertools import islice, takewhile
from typing import Any, Callable, Iterable, Protocol, Sequence

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from kestrel.clock import Clock
from kestrel.collection import InvalidQueueName
from kestrel.config import ConfigError
from kestrel.queue import PersistentQueue, QueueUnavailable
from kestrel.server import ServerContext
from kestrel.session import Session, Unavailable
from kestrel.sqs import attributes as queue_attributes
from kestrel.sqs.attributes import METADATA_KEY, QueueFacts, metadata_of
from kestrel.sqs.errors import SqsError, batch_entry_error, sqs_error
from kestrel.sqs.names import (
    engine_name,
    is_fifo,
    name_in_arn,
    name_in_url,
    no_such_queue,
    queue_arn,
    queue_url,
    sqs_name,
    check_new_name,
)
from kestrel.sqs.receipts import Hold, HeldReads
from kestrel.sqs.receiving import Receive, ReceiveRequest
from kestrel.sqs.sending import Sender, SendTarget
from kestrel.sqs.wire import SqsCall

PURGE_INTERVAL = 60.0
LIST_LIMIT = 1000
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256

Result = dict[str, Any] | Deferred


class Authorize(Protocol):
    """The caller's grants, as the HTTP resource knows them (kestrel.sqs.apps)."""

    def __call__(self, kind: str, queue_name: str) -> None:
        """Raise SqsError AccessDenied unless the caller has the `kind` grant ('read', 'write', 'admin') on the queue."""

    def visible(self, queue_name: str) -> bool:
        """Whether the caller has any grant on the queue."""


class SqsService:
    log = Logger()

    def __init__(self, server: ServerContext, clock: IReactorTime, account: str = "000000000000", region: str = "us-east-1"):
        self.server = server
        self.collection = server.collection
        # Typed as kestrel.clock's Protocol, which mypy can check calls against (Zope's interfaces have no `self`).
        self.clock: Clock = clock
        self.account = account
        self.region = region
        self.session = Session(server, track_open_reads=False)
        self.held = HeldReads(self.collection, clock)
        self.sender = Sender(self.session, clock)
        self._purged_at: dict[str, float] = {}
        # Every queue's SQS name, sorted, and the collection's `names_changes` when it was.
        self._sorted_names: tuple[int, list[str]] | None = None
        self._actions: dict[str, Callable[[SqsCall, str, Authorize], Result]] = {
            "CreateQueue": self._create_queue,
            "GetQueueUrl": self._get_queue_url,
            "ListQueues": self._list_queues,
            "DeleteQueue": self._delete_queue,
            "PurgeQueue": self._purge_queue,
            "GetQueueAttributes": self._get_queue_attributes,
            "SetQueueAttributes": self._set_queue_attributes,
            "TagQueue": self._tag_queue,
            "UntagQueue": self._untag_queue,
            "ListQueueTags": self._list_queue_tags,
            "ListDeadLetterSourceQueues": self._list_dead_letter_source_queues,
            "SendMessage": self._send_message,
            "SendMessageBatch": self._send_message_batch,
            "ReceiveMessage": self._receive_message,
            "DeleteMessage": self._delete_message,
            "DeleteMessageBatch": self._delete_message_batch,
            "ChangeMessageVisibility": self._change_message_visibility,
            "ChangeMessageVisibilityBatch": self._change_message_visibility_batch,
        }

    def start(self) -> None:
        """Follow queue deletions: a deleted queue's held reads, timers and FIFO window go with it."""
        self.collection.deletion_observers.append(self._queue_deleted)

    def stop(self) -> None:
        """End waiting receives, stop every timer and give every held message back to its queue."""
        if self._queue_deleted in self.collection.deletion_observers:
            self.collection.deletion_observers.remove(self._queue_deleted)
        self.session.finish()
        self.held.give_back_all()

    def handle(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        """
        The result of `call` (encode_result's dict, under the JSON protocol's output member
        names), now or as a Deferred; raises SqsError. `base_url` is `<scheme>://<host>:<port>`
        as the client addressed the server. A Deferred (a long poll) may be cancelled: what
        it had received goes back to the queue.
        """
        try:
            result = self._actions[call.action](call, base_url, authorize)
        except (Unavailable, QueueUnavailable) as error:
            raise unavailable(error) from None
        if isinstance(result, Deferred):
            result.addErrback(self._server_trouble)
        return result

    @staticmethod
    def _server_trouble(failure: Failure) -> Failure:
        error = failure.check(Unavailable, QueueUnavailable)
        if error is not None:
            raise unavailable(failure.value)
        return failure

    # Queues

    def _create_queue(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        name: str = call.params["QueueName"]
        given: dict[str, str] = call.params.get("Attributes", {})
        fifo = given.get("FifoQueue", "").lower() == "true"
        check_new_name(name, fifo)
        authorize("admin", name)
        change = queue_attributes.parse_attributes(given, fifo, self._dead_letter_target(name))
        engine = engine_name(name)
        url = queue_url(base_url, self.account, name)
        if self.collection.is_alias(engine):
            raise sqs_error("InvalidParameterValue", f"{name} is an alias of the server's config, not a queue.")
        if engine in self.collection:
            different = queue_attributes.differences(change, self._current_attributes(name))
            if different:
                raise sqs_error(
                    "QueueAlreadyExists",
                    f"A queue already exists with the same name and a different value for attribute(s) {', '.join(different)}",
                )
            return {"QueueUrl": url}
        tags = call.params.get("tags", {})
        _check_tags(name, tags)
        self.session.check_writable("create")
        now = int(self.clock.seconds())
        kept = {key: value for key, value in change.kept.items() if value is not None}
        sqs = {"attributes": kept, "tags": tags, "created": now, "modified": now}
        written = [
            self._configure(engine, {"max_age": queue_attributes.DEFAULT_RETENTION, **change.settings}),
            self.collection.set_metadata(engine, {**self.collection.metadata(engine), METADATA_KEY: sqs}),
        ]
        return gatherResults(written, consumeErrors=True).addCallback(lambda _: {"QueueUrl": url})

    def _get_queue_url(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        name: str = call.params["QueueName"]
        self._check_visible(authorize, name, queue_url(base_url, self.account, name))
        owner = call.params.get("QueueOwnerAWSAccountId", self.account)
        if owner != self.account or not self._exists(engine_name(name)):
            raise no_such_queue()
        return {"QueueUrl": queue_url(base_url, self.account, name)}

    def _list_queues(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        prefix: str = call.params.get("QueueNamePrefix", "")
        names = self._queue_names()
        start = _page_start(names, prefix, call.params.get("NextToken"))
        with_prefix = takewhile(lambda name: name.startswith(prefix), map(names.__getitem__, range(start, len(names))))
        page, next_token = _page((name for name in with_prefix if authorize.visible(name)), call.params.get("MaxResults"))
        result: dict[str, Any] = {}
        if page:
            result["QueueUrls"] = [queue_url(base_url, self.account, name) for name in page]
        if next_token:
            result["NextToken"] = next_token
        return result

    def _queue_names(self) -> list[str]:
        """Every queue's SQS name, sorted; sorted again only once queues were made or deleted since."""
        changes = self.collection.names_changes
        if self._sorted_names is None or self._sorted_names[0] != changes:
            collection = self.collection
            names = sorted(sqs_name(engine) for engine in collection.names() if not collection.is_alias(engine))
            self._sorted_names = (changes, names)
        return self._sorted_names[1]

    def _delete_queue(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        _, engine = self._queue(call, base_url, authorize, "admin")
        self.session.check_writable("delete")
        # The deletion observer forgets the queue's held reads, timers and FIFO window.
        self.collection.delete(engine)
        return {}

    def _purge_queue(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        name, engine = self._queue(call, base_url, authorize, "admin")
        now = self.clock.seconds()
        last = self._purged_at.get(engine)
        if last is not None and now - last < PURGE_INTERVAL:
            raise sqs_error(
                "AWS.SimpleQueueService.PurgeQueueInProgress",
                f"Only one PurgeQueue operation on {name} is allowed every {int(PURGE_INTERVAL)} seconds.",
            )
        self.session.check_writable("flush")
        queue = self._engine_queue(engine)
        self.collection.flush(engine)
        self.held.purge(engine, queue)
        self._purged_at[engine] = now
        return {}

    def _get_queue_attributes(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        name, _ = self._queue(call, base_url, authorize, None)
        names: list[str] = call.params.get("AttributeNames", [])
        chosen = queue_attributes.chosen(self._current_attributes(name), names, is_fifo(name))
        return {"Attributes": chosen} if chosen else {}

    def _set_queue_attributes(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        name, engine = self._queue(call, base_url, authorize, "admin")
        change = queue_attributes.parse_attributes(call.params["Attributes"], is_fifo(name), self._dead_letter_target(name))
        self.session.check_writable("configure")
        written = []
        if change.settings:
            written.append(self._configure(engine, change.settings))
        sqs = self._sqs_metadata(engine)
        kept = dict(sqs.get("attributes", {}))
        for key, value in change.kept.items():
            if value is None:
                kept.pop(key, None)
            else:
                kept[key] = value
        sqs["attributes"] = kept
        sqs["modified"] = int(self.clock.seconds())
        written.append(self._keep_metadata(engine, sqs))
        return gatherResults(written, consumeErrors=True).addCallback(lambda _: {})

    def _tag_queue(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        name, engine = self._queue(call, base_url, authorize, "admin")
        sqs = self._sqs_metadata(engine)
        tags = {**sqs.get("tags", {}), **call.params["Tags"]}
        _check_tags(name, tags)
        sqs["tags"] = tags
        return self._keep_metadata(engine, sqs).addCallback(lambda _: {})

    def _untag_queue(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        _, engine = self._queue(call, base_url, authorize, "admin")
        sqs = self._sqs_metadata(engine)
        removed = set(call.params["TagKeys"])
        sqs["tags"] = {key: value for key, value in sqs.get("tags", {}).items() if key not in removed}
        return self._keep_metadata(engine, sqs).addCallback(lambda _: {})

    def _list_queue_tags(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        _, engine = self._queue(call, base_url, authorize, None)
        tags = self._sqs_metadata(engine).get("tags", {})
        return {"Tags": tags} if tags else {}

    def _list_dead_letter_source_queues(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        _, engine = self._queue(call, base_url, authorize, None)
        sources = [
            sqs_name(source)
            for source in self.collection.names()
            if self._dead_letter_queue(source) == engine and authorize.visible(sqs_name(source))
        ]
        sources.sort()
        start = _page_start(sources, "", call.params.get("NextToken"))
        page, next_token = _page(sources[start:], call.params.get("MaxResults"))
        result: dict[str, Any] = {"queueUrls": [queue_url(base_url, self.account, name) for name in page]}
        if next_token:
            result["NextToken"] = next_token
        return result

    # Messages

    def _send_message(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        name, engine = self._queue(call, base_url, authorize, "write")
        return self.sender.send(self._send_target(name, engine), call.params)

    def _send_message_batch(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        name, engine = self._queue(call, base_url, authorize, "write")
        return self.sender.send_batch(self._send_target(name, engine), call.params["Entries"])

    def _receive_message(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        name, engine = self._queue(call, base_url, authorize, "read")
        kept = self._kept_attributes(engine)
        params = call.params
        wait = params.get("WaitTimeSeconds", int(kept.get("ReceiveMessageWaitTimeSeconds", 0)))
        request = ReceiveRequest(
            name=engine,
            fifo=is_fifo(name),
            max_messages=params.get("MaxNumberOfMessages", 1),
            visibility=params.get("VisibilityTimeout", int(kept.get("VisibilityTimeout", 30))),
            deadline=self.clock.seconds() + wait if wait else None,
            attribute_names=frozenset(params.get("AttributeNames", [])) | frozenset(params.get("MessageSystemAttributeNames", [])),
            message_attribute_names=tuple(params.get("MessageAttributeNames", [])),
        )
        return Receive(request, self.session, self.held, self.clock).run()

    def _delete_message(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        _, engine = self._queue(call, base_url, authorize, "read")
        read = self.held.find(engine, call.params["ReceiptHandle"])
        if read is not None:
            self.held.delete(read)
        return self._when_durable(engine, {})

    def _delete_message_batch(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        _, engine = self._queue(call, base_url, authorize, "read")

        def delete(entry: dict[str, Any]) -> None:
            read = self.held.find(engine, entry["ReceiptHandle"])
            if read is not None:
                self.held.delete(read)

        return self._when_durable(engine, _batch(call.params["Entries"], delete))

    def _change_message_visibility(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        _, engine = self._queue(call, base_url, authorize, "read")
        read = self.held.find(engine, call.params["ReceiptHandle"])
        if read is not None:
            self.held.change_visibility(read, call.params["VisibilityTimeout"])
        return {}

    def _change_message_visibility_batch(self, call: SqsCall, base_url: str, authorize: Authorize) -> Result:
        _, engine = self._queue(call, base_url, authorize, "read")

        def change(entry: dict[str, Any]) -> None:
            if "VisibilityTimeout" not in entry:
                raise sqs_error("MissingParameter", "The request must contain the parameter VisibilityTimeout.")
            read = self.held.find(engine, entry["ReceiptHandle"])
            if read is not None:
                self.held.change_visibility(read, entry["VisibilityTimeout"])

        return _batch(call.params["Entries"], change)

    # The queue of a call

    def _queue(self, call: SqsCall, base_url: str, authorize: Authorize, kind: str | None) -> tuple[str, str]:
        """
        The SQS and engine names of the queue a call names, once the caller may act on it
        (`kind` of grant, or None for any); NonExistentQueue when there is none.
        """
        url = call.queue_url(base_url)
        if url is None:
            raise sqs_error("MissingParameter", "The request must contain the parameter QueueUrl.")
        name = name_in_url(url, self.account)
        if kind is None:
            self._check_visible(authorize, name, url)
        else:
            authorize(kind, name)
        engine = engine_name(name)
        if not self._exists(engine):
            raise no_such_queue()
        return name, engine

    @staticmethod
    def _check_visible(authorize: Authorize, name: str, url: str) -> None:
        if not authorize.visible(name):
            raise sqs_error("AccessDenied", f"Access to the resource {url} is denied.")

    def _exists(self, engine: str) -> bool:
        return engine in self.collection and not self.collection.is_alias(engine)

    def _engine_queue(self, engine: str) -> PersistentQueue:
        queue = self.collection.queue(engine, create=False)
        if queue is None:
            raise no_such_queue()
        return queue

    def _send_target(self, name: str, engine: str) -> SendTarget:
        config = self.collection.queue_config(engine)
        kept = self._kept_attributes(engine)
        return SendTarget(
            name=engine,
            fifo=is_fifo(name),
            delay_seconds=int(kept.get("DelaySeconds", 0)),
            max_message_size=int(kept.get("MaximumMessageSize", min(config.max_item_size, queue_attributes.LARGEST_MESSAGE))),
            max_item_size=config.max_item_size,
            content_based_deduplication=kept.get("ContentBasedDeduplication") == "true",
        )

    # Attributes and metadata

    def _current_attributes(self, name: str) -> dict[str, str]:
        engine = engine_name(name)
        queue = self._engine_queue(engine)
        counts = self.held.counts(engine, queue)
        sqs = self._sqs_metadata(engine)
        dead_letter_queue = self._dead_letter_queue(engine)
        created = int(sqs.get("created", queue.created_at))
        facts = QueueFacts(
            name=name,
            config=self.collection.queue_config(engine),
            kept=sqs.get("attributes", {}),
            arn=queue_arn(self.region, self.account, name),
            dead_letter_arn=None if dead_letter_queue is None else queue_arn(self.region, self.account, sqs_name(dead_letter_queue)),
            created=created,
            modified=int(sqs.get("modified", created)),
            waiting=queue.items + counts[Hold.PARKED],
            not_visible=max(0, queue.open_transactions - counts[Hold.DELAYED] - counts[Hold.PARKED]),
            delayed=counts[Hold.DELAYED],
        )
        return queue_attributes.current_attributes(facts)

    def _dead_letter_queue(self, engine: str) -> str | None:
        """The engine's dead-letter queue of queue `engine`, when it has one and a max_deliveries."""
        config = self.collection.queue_config(engine)
        return config.dead_letter_queue if config.max_deliveries is not None else None

    def _dead_letter_target(self, source: str) -> Callable[[str], str]:
        def target(arn: str) -> str:
            name = name_in_arn(arn, self.region, self.account)
            if name is None or not self._exists(engine_name(name)):
                raise ValueError("Dead-letter target does not exist.")
            if is_fifo(name) != is_fifo(source):
                raise ValueError("Dead-letter queue must be same type of queue as the source.")
            if name == source:
                raise ValueError("A queue cannot be its own dead-letter queue.")
            return engine_name(name)

        return target

    def _configure(self, engine: str, settings: dict[str, object]) -> Deferred:
        try:
            return self.collection.configure(engine, settings)
        except (ConfigError, InvalidQueueName) as error:
            # The checks above take only what the engine takes: this is the server's fault.
            raise sqs_error("InternalError", f"The queue's settings were refused: {error}") from None

    def _sqs_metadata(self, engine: str) -> dict[str, Any]:
        return metadata_of(self.collection.metadata(engine))

    def _kept_attributes(self, engine: str) -> dict[str, str]:
        return dict(self._sqs_metadata(engine).get("attributes", {}))

    def _keep_metadata(self, engine: str, sqs: dict[str, Any]) -> Deferred:
        return self.collection.set_metadata(engine, {**self.collection.metadata(engine), METADATA_KEY: sqs})

    def _when_durable(self, engine: str, result: dict[str, Any]) -> Result:
        """`result`, once the confirms just journaled are on disk when the queue fsyncs every write."""
        durable = self.collection.durability(engine, fanout=False)
        return result if durable is None else durable.addCallback(lambda _: result)

    def _queue_deleted(self, engine: str, queue: PersistentQueue) -> None:
        self.held.queue_deleted(engine, queue)
        self.sender.queue_deleted(engine)
        self._purged_at.pop(engine, None)


def unavailable(error: BaseException) -> SqsError:
    return sqs_error("ServiceUnavailable", f"The server cannot take this request now: {error}")


def _batch(entries: list[dict[str, Any]], act: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Act on each entry of a batch: Successful with its Id, or Failed with its error."""
    successful: list[dict[str, Any]] = []
    failed: list[dict[str, object]] = []
    for entry in entries:
        try:
            act(entry)
        except SqsError as error:
            failed.append(batch_entry_error(entry["Id"], error))
        else:
            successful.append({"Id": entry["Id"]})
    return {"Successful": successful, "Failed": failed}


def _check_tags(name: str, tags: dict[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise sqs_error("InvalidParameterValue", f"Too many tags added for queue {name}: at most {MAX_TAGS}.")
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
            raise sqs_error(
                "InvalidParameterValue",
                f"Tag keys must be between 1 and {MAX_TAG_KEY} characters in length and values at most {MAX_TAG_VALUE}.",
            )


def _page_start(names: Sequence[str], prefix: str, next_token: str | None) -> int:
    """
    Where a page of the sorted `names` starts: at the first with `prefix`, after the last of
    the page before (`next_token`). Found by bisection, so that a page of a million names
    costs its own length, not the listing's.
    """
    start = bisect_left(names, prefix)
    if next_token is not None:
        start = max(start, bisect_right(names, _token_name(next_token)))
    return start


def _page(names: Iterable[str], max_results: int | None) -> tuple[list[str], str | None]:
    """
    The page the first of `names` make: `max_results` of them, with the NextToken of the rest
    if there are more; without `max_results`, up to LIST_LIMIT and no NextToken, as SQS does.
    """
    limit = LIST_LIMIT if max_results is None else max_results
    page = list(islice(names, limit + 1))
    if len(page) <= limit:
        return page, None
    del page[limit:]
    return page, None if max_results is None else _name_token(page[-1])


def _name_token(name: str) -> str:
    """The NextToken of a page that ends with `name`."""
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii")


def _token_name(next_token: str) -> str:
    """The last name of the page before, from its NextToken."""
    try:
        return base64.b64decode(next_token.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error):
        raise sqs_error("InvalidParameterValue", "Invalid NextToken value.") from None
