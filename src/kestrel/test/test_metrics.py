"""Latency histograms and the Prometheus collector, read back with prometheus-client's own parser."""

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kestrel.admin.metrics import metrics_registry
from kestrel.journal.writer import JournalWriter
from kestrel.latency import LatencyHistogram
from kestrel.session import Session
from kestrel.test.support import RecordingRunner, ServerHarness


def scrape(server) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    text = generate_latest(metrics_registry(server)).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def queue_sample(samples, name: str, queue: str = "jobs") -> float:
    return samples[(f"kestrel_queue_{name}", (("queue", queue),))]


@pytest.fixture
def kestrel(harness) -> ServerHarness:
    return ServerHarness(harness, max_open_transactions=10)


# LatencyHistogram


def test_an_observation_lands_in_the_first_bucket_not_below_it():
    histogram = LatencyHistogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(seconds)
    assert histogram.counts == [2, 2, 1]
    assert histogram.count == 5
    assert histogram.sum == pytest.approx(8.65)
    assert histogram.cumulative() == [(0.1, 2), (1.0, 4), (float("inf"), 5)]


# The collector


def test_a_fresh_server_scrapes_cleanly(kestrel):
    samples = scrape(kestrel.server)
    assert samples[("kestrel_info", (("version", kestrel.server.version),))] == 1
    assert samples[("kestrel_queues", ())] == 0
    assert samples[("kestrel_status", (("kestrel_status", "Up"),))] == 1
    assert samples[("kestrel_status_writable", ())] == 1
    assert samples[("kestrel_set_latency_seconds_count", ())] == 0


def test_queue_metrics_follow_the_queue(kestrel):
    session = Session(kestrel.server)
    for data in (b"one", b"two", b"three"):
        session.set("jobs", data)
    assert session.fetch("jobs").data == b"one"
    assert session.fetch("jobs", transaction=True).data == b"two"
    assert session.fetch("empty") is None
    kestrel.settle()
    samples = scrape(kestrel.server)
    assert queue_sample(samples, "items") == 1
    assert queue_sample(samples, "bytes") == 5
    assert queue_sample(samples, "open_transactions") == 1
    assert queue_sample(samples, "put_items_total") == 3
    assert queue_sample(samples, "put_bytes_total") == 11
    assert queue_sample(samples, "get_hits_total") == 2
    assert queue_sample(samples, "get_misses_total", "empty") == 1
    assert queue_sample(samples, "transactions_total") == 1
    assert queue_sample(samples, "journal_bytes") == kestrel.collection.queue("jobs").journal.size
    assert queue_sample(samples, "max_items") == 2**31 - 1
    assert samples[("kestrel_commands_total", (("command", "set"),))] == 3
    assert samples[("kestrel_commands_total", (("command", "get"),))] == 3
    assert samples[("kestrel_open_connections", ())] == 1


def test_counts_for_expired_and_discarded_items(harness):
    kestrel = ServerHarness(harness, queue_overrides={"full": {"max_items": 1, "discard_old_when_full": True}})
    kestrel.add("full", b"one", b"two")
    kestrel.collection.add("old", b"gone", expiry=int(kestrel.clock.seconds() * 1000) + 1000)
    kestrel.clock.advance(2)
    kestrel.collection.flush_expired("old")
    samples = scrape(kestrel.server)
    assert queue_sample(samples, "discarded_items_total", "full") == 1
    assert queue_sample(samples, "expired_items_total", "old") == 1


def test_count_of_dead_lettered_items(harness):
    kestrel = ServerHarness(harness, queue_overrides={"jobs": {"max_deliveries": 1}})
    kestrel.add("jobs", b"spent")
    kestrel.collection.unremove("jobs", kestrel.collection.fetch("jobs", transaction=True).xid)
    assert kestrel.collection.fetch("jobs", transaction=True) is None
    assert queue_sample(scrape(kestrel.server), "dead_lettered_items_total") == 1


def test_alias_counters(harness):
    kestrel = ServerHarness(harness, aliases={"all": ("a", "b")})
    kestrel.add("all", b"hello")
    samples = scrape(kestrel.server)
    assert samples[("kestrel_alias_put_items_total", (("alias", "all"),))] == 1
    assert samples[("kestrel_alias_put_bytes_total", (("alias", "all"),))] == 5
    assert queue_sample(samples, "items", "b") == 1


def test_status_metrics_show_the_enforced_status(harness, tmp_path):
    kestrel = ServerHarness(harness, status_file=str(tmp_path / "status"))
    kestrel.server.status.set("readonly")
    samples = scrape(kestrel.server)
    assert samples[("kestrel_status", (("kestrel_status", "ReadOnly"),))] == 1
    assert samples[("kestrel_status", (("kestrel_status", "Up"),))] == 0
    assert samples[("kestrel_status_readable", ())] == 1
    assert samples[("kestrel_status_writable", ())] == 0


# Latencies observed by the session


def test_set_and_get_latencies_are_observed(kestrel):
    session = Session(kestrel.server)
    session.set("jobs", b"one")
    session.fetch("jobs")
    session.fetch("jobs")
    session.fetch("jobs", peek=True)
    latencies = kestrel.server.latencies
    assert latencies.set.count == 1
    assert latencies.get_hit.count == 1
    assert latencies.get_miss.count == 2


def test_delivery_latency_is_the_time_in_the_queue(kestrel):
    session = Session(kestrel.server)
    session.set("jobs", b"one")
    kestrel.clock.advance(90)
    session.fetch("jobs", peek=True)
    assert kestrel.server.latencies.delivery.count == 0
    session.fetch("jobs")
    delivery = kestrel.server.latencies.delivery
    assert (delivery.count, delivery.sum) == (1, 90)
    assert dict(delivery.cumulative())[60.0] == 0


def test_a_blocking_read_observes_when_it_is_answered(kestrel):
    session = Session(kestrel.server)
    waiting = session.fetch("jobs", deadline=kestrel.clock.seconds() + 10)
    assert kestrel.server.latencies.get_miss.count == 0
    kestrel.clock.advance(11)
    assert waiting.result is None
    assert kestrel.server.latencies.get_miss.count == 1


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner()


@pytest.fixture
def held(harness, runner) -> ServerHarness:
    """A server whose journal batches run only when the runner is told to."""
    writer = JournalWriter(harness.clock, runner=runner)
    writer.startService()
    return ServerHarness(harness, writer=writer, queue_overrides={"synced": {"sync_journal": 0}})


def test_a_set_that_waits_for_fsync_is_observed_once_durable(held, runner):
    stored = Session(held.server).set("synced", b"one")
    assert held.server.latencies.set.count == 0
    held.settle()
    runner.run_all()
    assert stored.result is True
    assert held.server.latencies.set.count == 1


def test_the_writer_reports_each_batch_time(held, runner):
    observed = []
    held.writer.batch_observer = observed.append
    held.add("jobs", b"one")
    held.settle()
    assert observed == []
    runner.run_all()
    assert len(observed) == 1 and observed[0] >= 0
