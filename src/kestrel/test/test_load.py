"""The load tools without a server: items, checks, histograms, results and options."""

import json
import os
import pickle

import pytest

from kestrel.load import cli
from kestrel.load.checks import Check, Deliveries, count_check, order_check
from kestrel.load.clients import Server
from kestrel.load.items import LYRIC, NumberedItems, filler
from kestrel.load.stats import Latency, Phase, Result


def parse(*argv: str):
    parser = cli.parser()
    return cli.finish_options(parser, parser.parse_args(argv))


def test_filler_repeats_the_lyric_to_the_size():
    assert filler(10) == LYRIC[:10]
    assert filler(3 * len(LYRIC) + 5) == LYRIC * 3 + LYRIC[:5]
    assert b"\n" not in LYRIC  # the text protocol carries items as lines


def test_numbered_items_carry_their_number_and_run():
    items = NumberedItems(1024)
    item = items.make(0x2A)
    assert len(item) == 1024
    assert items.number(item) == 0x2A
    assert NumberedItems(1024).number(item) is None  # another run's item
    assert items.number(b"garbage") is None
    assert len(NumberedItems(0).make(7)) == NumberedItems.HEADER


def test_deliveries_exactly_once():
    deliveries = Deliveries(5)
    deliveries.add([4, 0, 3])
    deliveries.add([1, 2])
    check = deliveries.check()
    assert check.status == Check.OK
    assert "all 5 items" in check.detail


def test_deliveries_name_the_missing_and_duplicated_items():
    deliveries = Deliveries(20)
    deliveries.add([number for number in range(20) if number not in (3, 17)])
    deliveries.add([5, 5, 99])
    check = deliveries.check()
    assert check.status == Check.FAILED
    assert "2 never delivered: 00000003 00000011" in check.detail
    assert "1 delivered more than once: 00000005" in check.detail
    assert "1 with numbers out of range" in check.detail
    assert deliveries.missing == [3, 17]
    assert deliveries.duplicated == [5]


def test_a_long_list_of_missing_items_is_cut_short():
    check = Deliveries(100).check()
    assert "100 never delivered" in check.detail
    assert check.detail.endswith("00000009 ...")


def test_order_check():
    assert order_check([0, 1, 2]).status == Check.OK
    check = order_check([0, 2, 1, 3])
    assert check.status == Check.FAILED
    assert "2 of 4 items out of place: #1 was 00000002, #2 was 00000001" in check.detail


def test_count_check():
    assert count_check("stored", "sets stored", 10, 10).line() == "check stored: OK (10 of 10 sets stored)"
    assert count_check("stored", "sets stored", 9, 10).status == Check.FAILED


def latency_of(*microseconds: int) -> Latency:
    latency = Latency()
    for value in microseconds:
        latency.record_ns(value * 1000)
    return latency


def test_latency_summary():
    summary = latency_of(*range(1, 1001)).summary()
    assert summary["count"] == 1000
    assert summary["min"] == 1
    assert summary["max"] == pytest.approx(1000, rel=0.001)
    assert summary["p50"] == pytest.approx(500, rel=0.001)
    assert summary["p90"] == pytest.approx(900, rel=0.001)
    assert summary["p99"] == pytest.approx(990, rel=0.001)
    assert summary["p99.9"] == pytest.approx(999, rel=0.001)
    assert summary["mean"] == pytest.approx(500.5, rel=0.001)


def test_latency_crosses_processes_encoded_and_merges():
    merged = pickle.loads(pickle.dumps(latency_of(10, 20)))
    merged.add(pickle.loads(pickle.dumps(latency_of(30))))
    summary = merged.summary()
    assert (summary["count"], summary["min"], summary["max"]) == (3, 10, 30)


def test_latency_clamps_out_of_range_values():
    summary = latency_of(0, 10**12).summary()
    assert summary["min"] == Latency.LOWEST_US
    assert summary["max"] == pytest.approx(Latency.HIGHEST_US, rel=0.001)


def result(checks, errors=()) -> Result:
    phase = Phase("flood", 1000, 2_000_000_000, {"set": latency_of(100, 200), "get": Latency()})
    return Result("flood", {"items": 1000}, Server("kestrel", "2.4.7").as_json(), [phase], {"sent": 1000}, checks, list(errors))


def test_result_json():
    document = json.loads(json.dumps(result([Check.that("exactly once", True, "fine")]).as_json()))
    assert document["ok"] is True
    assert document["server"] == {"kind": "kestrel", "version": "2.4.7"}
    flood = document["phases"]["flood"]
    assert (flood["items"], flood["elapsed_ms"], flood["items_per_second"]) == (1000, 2000.0, 500.0)
    assert flood["latency_us"]["set"]["count"] == 2
    assert list(flood["latency_us"]["set"]) == ["count", "min", "p50", "p90", "p99", "p99.9", "max", "mean"]
    assert document["checks"] == [{"name": "exactly once", "status": "ok", "detail": "fine"}]


def test_result_lines():
    lines = result([Check.skipped("exactly once", "memcached has no queues")]).lines()
    assert lines[0] == "flood: 1000 items in 2000 ms: 500 items/s (2000.0 usec/item throughput)"
    assert lines[1] == "  get latency: no requests"
    assert lines[2].startswith("  set latency (usec): min 100  p50 100  p90 200  p99 200  p99.9 200  max 200")
    assert "check exactly once: SKIPPED (memcached has no queues)" in lines
    assert lines[-1] == "flood: OK"


def test_a_failed_check_or_an_error_fails_the_result():
    assert not result([Check.that("exactly once", False, "1 never delivered")]).ok
    failed = result([Check.that("sent", True, "")], errors=["stalled"])
    assert not failed.ok
    assert failed.lines()[-1] == "flood: FAILED (1 problem(s))"


def test_options_follow_kestrel_letters_and_defaults():
    options = parse("put-many")
    assert (options.clients, options.items, options.bytes, options.roll_up) == (100, 10000, 1024, 1)
    assert (options.queue, options.queues, options.get, options.flush) == ("spam", 1, False, False)
    assert (options.host, options.port, options.protocol, options.procs) == ("127.0.0.1", 22133, "memcache", 1)
    options = parse("flood", "-h", "localhost", "-P", "5", "-R", "2", "-C", "3", "-r", "4", "-B", "--flush", "-M")
    assert (options.host, options.prefill, options.producers, options.consumers) == ("localhost", 5, 2, 3)
    assert (options.roll_up, options.blocking, options.flush, options.monitor) == (4, True, True, True)
    options = parse("many-clients", "-k", "10")
    assert (options.sleep, options.items, options.consumers, options.kill) == (100, 100, 100, 10.0)
    options = parse("packing")
    assert (options.items, options.kilobytes, options.pause, options.cycles) == (25000, 1, 1.0, 100)
    options = parse("leaky-reader", "-t", "4")
    assert (options.items, options.drop, options.queue, options.consumers) == (1000, 0.01, "spam-thrift", 4)
    assert (options.port, options.protocol, options.auto_abort) == (2229, "thrift", 5000)


def test_the_port_follows_the_protocol():
    assert parse("flood", "--thrift").port == 2229
    assert parse("flood", "--protocol", "text").port == 2222
    assert parse("flood", "--protocol", "text", "-p", "9999").port == 9999


@pytest.mark.parametrize(
    "argv",
    [
        ["put-many", "-c", "0"],
        ["leaky-reader", "-d", "1.5"],
        ["many-clients", "-k", "101"],
        ["many-clients", "--protocol", "thrift"],
        ["packing", "--procs", "2"],
        ["flood", "--thrift", "-M"],
    ],
)
def test_bad_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        parse(*argv)
    assert exit.value.code == 2


def test_an_unreachable_server_exits_2(capsys):
    assert cli.main(["put-many", "-p", "1", "-n", "1"]) == 2
    assert "cannot reach memcache server at 127.0.0.1:1" in capsys.readouterr().err


def test_kestrel_load_without_its_extra_says_what_to_install(monkeypatch, capsys):
    import sys as system

    from kestrel import command

    # A fresh import of the tools, as in a process that has not imported them yet.
    for name in [name for name in system.modules if name.startswith("kestrel.load")]:
        monkeypatch.delitem(system.modules, name)
    for name in ["hdrh", *(name for name in system.modules if name.startswith("hdrh."))]:
        monkeypatch.setitem(system.modules, name, None)  # as if hdrhistogram were not installed
    assert command.main(["load", "put-many"]) == 2
    assert capsys.readouterr().err == "kestrel: load: hdrh is not installed; the load tools need pip install 'txkestrel[load]'\n"


def test_queue_memory_measures_empty_queues_and_leaves_them_journaled(tmp_path):
    from kestrel.load.queue_memory import measure

    result = measure(200, str(tmp_path), traced=True)
    assert result["queues"] == 200
    assert result["traced_bytes_per_queue"] > 0
    assert len([name for name in os.listdir(tmp_path) if name.startswith("q")]) == 200
