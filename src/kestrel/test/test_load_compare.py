"""The benchmark beside Darner without a server: db's output, the cells, the report and its tables."""

from pathlib import Path

import pytest

from kestrel.load import versus_darner
from kestrel.load.darner_report import build_report, markdown_tables
from kestrel.load.pipelined import Occurrences, batches

DB_OUTPUT = """\
Concurrency Level:      10
Gets:                   2000
Sets:                   2000
Time taken for tests:   0.046 seconds
Requests per second:    86956.5 #/sec (mean)
Time per request:       116.687 us (mean)

Percentage of the requests served within a certain time (us)
  50%:    91
  66%:    103
  90%:    190
  99%:    260
 100%:    3442 (longest request)
"""


def test_db_output_gives_its_rate_and_percentiles():
    assert versus_darner.parse_db_output(DB_OUTPUT) == {"requests_per_second": 86956.5, "p50_us": 91, "p99_us": 260}


def test_output_that_is_not_dbs_raises():
    with pytest.raises(ValueError, match="not the output of db"):
        versus_darner.parse_db_output("connection refused\n")


def test_a_pattern_split_across_chunks_is_counted_once():
    stream = b"VALUE q 0 3\r\nxxx\r\nEND\r\n" * 3 + b"END\r\n"
    for first in range(len(stream)):
        for second in range(first, len(stream)):
            counted = Occurrences(b"END\r\n")
            for chunk in (stream[:first], stream[first:second], stream[second:]):
                counted.feed(chunk)
            assert counted.count == 4, (first, second)


def test_runs_are_whole_batches():
    assert batches(40, 20) == 2
    for items, per_write in ((30, 20), (0, 1), (10, 0)):
        with pytest.raises(ValueError):
            batches(items, per_write)
    for cell in versus_darner.cells([1, 10], 20000):
        if cell["bench"] != "db":
            batches(cell["items"], cell["per_write"])


def test_cells_run_db_at_each_concurrency_then_pipelined_sets_and_gets():
    cells = versus_darner.cells([1, 100], 5000)
    assert cells[:2] == [{"bench": "db", "clients": 1, "requests": 5000}, {"bench": "db", "clients": 100, "requests": 5000}]
    sets = {(cell["item_size"], cell["per_write"]) for cell in cells if cell["bench"] == "sets"}
    assert sets == {(size, per_write) for size in (64, 1024, 65536) for per_write in (1, 20, 200, 2000)}
    assert [(cell["item_size"], cell["per_write"]) for cell in cells if cell["bench"] == "gets"] == [(1024, 1), (1024, 200)]


def test_variants_default_to_the_installed_code_and_take_absolute_paths(tmp_path, monkeypatch):
    assert versus_darner.parse_variants(None) == {"txkestrel": None}
    monkeypatch.chdir(tmp_path)
    assert versus_darner.parse_variants(["before=old", "after"]) == {"before": str(tmp_path / "old"), "after": None}
    for taken in (["darner=old"], ["a=x", "a=y"]):
        with pytest.raises(SystemExit):
            versus_darner.parse_variants(taken)


def test_the_machine_names_each_variants_commit(tmp_path):
    machine = versus_darner.machine(tmp_path, {"installed": None, "elsewhere": str(tmp_path)})
    installed = machine["variants"]["installed"]
    assert installed["pythonpath"] is None
    assert Path(installed["source"], "kestrel", "__init__.py").exists()
    assert machine["variants"]["elsewhere"] == {"pythonpath": str(tmp_path), "source": str(tmp_path), "commit": None, "dirty": None}
    assert machine["darner"] == {"path": str(tmp_path), "source_commit": None}
    assert machine["nproc"] >= 1


DB = {"bench": "db", "clients": 10, "requests": 20000}
SETS = {"bench": "sets", "item_size": 1024, "per_write": 20, "items": 40000}
GETS = {"bench": "gets", "item_size": 1024, "per_write": 200, "items": 60000}


def run(server: str, repeat: int, cell: dict, **figures) -> dict:
    return {"server": server, "repeat": repeat, "cell": cell, "figures": figures}


def db_run(server: str, repeat: int, rate: float, p99: int) -> dict:
    return run(server, repeat, DB, requests_per_second=rate, p50_us=100, p99_us=p99)


RUNS = [
    db_run("darner", 0, 100000.0, 150),
    db_run("txkestrel", 0, 40000.0, 400),
    db_run("darner", 1, 120000.0, 170),
    db_run("txkestrel", 1, 50000.0, 300),
    db_run("darner", 2, 110000.0, 160),
    db_run("txkestrel", 2, 44000.0, 350),
    run("darner", 0, SETS, items_per_second=70000),
    run("txkestrel", 0, SETS, items_per_second=84000),
    run("darner", 0, GETS, items_per_second=90000),
    run("txkestrel", 0, GETS, items_per_second=0),
]


def test_the_report_gives_each_cells_medians_and_ratios_to_darner():
    report = build_report(RUNS, ["txkestrel"], {"nproc": 2})
    assert report["servers"] == ["darner", "txkestrel"]
    assert report["runs"] == RUNS and report["machine"] == {"nproc": 2}
    db, sets, gets = report["cells"]
    assert db["cell"] == DB
    assert db["medians"] == {
        "darner": {"requests_per_second": 110000.0, "p50_us": 100, "p99_us": 160},
        "txkestrel": {"requests_per_second": 44000.0, "p50_us": 100, "p99_us": 350},
    }
    assert db["ratios"] == {"txkestrel": {"requests_per_second": 0.4, "p50_us": 1.0, "p99_us": 2.188}}
    assert sets["ratios"] == {"txkestrel": {"items_per_second": 1.2}}
    assert gets["ratios"] == {"txkestrel": {"items_per_second": 0.0}}


def test_a_ratio_to_nothing_is_none():
    runs = [run("darner", 0, SETS, items_per_second=0), run("new", 0, SETS, items_per_second=5)]
    assert build_report(runs, ["new"], {})["cells"][0]["ratios"] == {"new": {"items_per_second": None}}


def test_the_tables_show_medians_ratios_and_db_p99():
    assert markdown_tables(build_report(RUNS, ["txkestrel"], {})) == (
        "| clients | Darner | txkestrel | ratio | p99 Darner / txkestrel |\n"
        "| --- | --- | --- | --- | --- |\n"
        "| 10 | 110,000 req/s | 44,000 req/s | 0.40 | 160 / 350 us |\n"
        "\n"
        "| items/s: Darner / txkestrel (ratio) | 20 per write | 200 per write |\n"
        "| --- | --- | --- |\n"
        "| 1 KB sets | 70,000 / 84,000 (1.20) |  |\n"
        "| 1 KB gets (draining) |  | 90,000 / 0 (0.00) |"
    )


def test_the_tables_have_a_column_for_each_variant():
    runs = [run("darner", 0, SETS, items_per_second=100), run("before", 0, SETS, items_per_second=50), run("after", 0, SETS, items_per_second=150)]
    runs += [db_run("darner", 0, 1000.0, 10), db_run("before", 0, 500.0, 20), db_run("after", 0, 2000.0, 5)]
    assert markdown_tables(build_report(runs, ["before", "after"], {})).splitlines() == [
        "| clients | Darner | before | ratio | after | ratio | p99 Darner / before / after |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        "| 10 | 1,000 req/s | 500 req/s | 0.50 | 2,000 req/s | 2.00 | 10 / 20 / 5 us |",
        "",
        "| items/s: Darner / before (ratio) / after (ratio) | 20 per write |",
        "| --- | --- |",
        "| 1 KB sets | 100 / 50 (0.50) / 150 (1.50) |",
    ]


def test_the_db_table_shows_the_servers_cpu_per_request_when_the_runs_measured_it():
    runs = [
        run("darner", 0, DB, requests_per_second=100000.0, p50_us=90, p99_us=150, cpu_us_per_request=8.24),
        run("txkestrel", 0, DB, requests_per_second=50000.0, p50_us=180, p99_us=400, cpu_us_per_request=18.06),
        run("floor", 0, DB, requests_per_second=98000.0, p50_us=95, p99_us=170, cpu_us_per_request=8.71),
    ]
    assert markdown_tables(build_report(runs, ["txkestrel", "floor"], {})).splitlines()[2] == (
        "| 10 | 100,000 req/s | 50,000 req/s | 0.50 | 98,000 req/s | 0.98 | 150 / 400 / 170 us | 8.2 / 18.1 / 8.7 us |"
    )


def test_the_floor_is_no_variant_name():
    with pytest.raises(SystemExit):
        versus_darner.parse_variants(["floor=/tmp"])


def test_the_floor_responder_answers_sets_and_gets_split_anywhere():
    from twisted.internet.testing import StringTransport

    from kestrel.load.floor import ITEM, FloorResponder

    responder, transport = FloorResponder(), StringTransport()
    responder.makeConnection(transport)
    stream = b"set q 0 0 3\r\nabc\r\nget q\r\n"
    for byte in range(len(stream)):
        responder.dataReceived(stream[byte:byte + 1])
    assert transport.value() == b"STORED\r\nVALUE q 0 64\r\n" + ITEM + b"\r\nEND\r\n"


def test_request_cost_feeds_real_requests_and_reports_the_cost(capsys):
    from kestrel.load import request_cost

    assert request_cost.main(["--requests", "200"]) == 0
    assert capsys.readouterr().out.endswith("us per request (200 requests, a set and a get in turn)\n")
