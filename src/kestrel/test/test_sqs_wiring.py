"""The SQS API in the service tree (kestrel.tap): its service between the collection and the listeners."""

from twisted.internet.testing import MemoryReactorClock

from kestrel.config import ServerConfig
from kestrel.sqs.apps import App
from kestrel.tap import KestrelService

LOOPBACK = "tcp:0:interface=127.0.0.1"


def config(tmp_path, **options) -> ServerConfig:
    return ServerConfig(
        queue_path=str(tmp_path / "spool"), memcache_listen="", text_listen="", thrift_listen="", admin_listen="",
        **options,
    )


def test_the_sqs_service_starts_after_the_collection_and_stops_before_it(tmp_path):
    service = KestrelService(config(tmp_path, sqs_listen=LOOPBACK), reactor=MemoryReactorClock())
    children = list(service)
    (sqs,) = [child for child in children if getattr(child, "target", None) is service.sqs]
    # A MultiService starts its children in order and stops them in reverse.
    assert children.index(service.collection) < children.index(sqs) < children.index(service.listeners[0])
    assert [listener.protocol for listener in service.listeners] == ["sqs"]


def test_without_sqs_listen_there_is_no_sqs_service(tmp_path):
    service = KestrelService(config(tmp_path), reactor=MemoryReactorClock())
    assert service.sqs is None
    assert "sqs" not in [listener.protocol for listener in service.listeners]


def test_the_open_mode_is_logged_as_a_warning(tmp_path, captured_logs):
    KestrelService(config(tmp_path, sqs_listen=LOOPBACK), reactor=MemoryReactorClock())
    (warning,) = [event for event in captured_logs.events if "accepts any signature" in event.get("log_format", "")]
    assert warning["log_level"].name == "warn" and warning["endpoint"] == LOOPBACK


def test_with_apps_nothing_is_said_of_an_open_mode(tmp_path, captured_logs):
    apps = {"billing": App("billing", "AKIDBILLING01", b"secret", read=("billing-*",))}
    KestrelService(config(tmp_path, sqs_listen=LOOPBACK, apps=apps), reactor=MemoryReactorClock())
    assert not [message for message in captured_logs.messages() if "accepts any signature" in message]
