"""kestrel.load.sqs_throughput: its medians and its table (the runs themselves need real servers)."""

from kestrel.load.sqs_throughput import markdown, medians


def run(kind, repeat, send, take):
    figures = {"messages_per_second": send, "client_cpu_us_per_message": 1.0, "server_cpu_us_per_message": 10.0}
    return {"kind": kind, "repeat": repeat, "figures": {"send": figures, "receive_delete": dict(figures, messages_per_second=take)}}


def test_medians_per_kind_and_phase_in_the_order_first_run():
    results = [run("txkestrel json", 0, 100, 300), run("elasticmq query", 0, 50, 70),
               run("txkestrel json", 1, 120, 200), run("elasticmq query", 1, 40, 90), run("txkestrel json", 2, 110, 250)]
    table = medians(results)
    assert list(table) == ["txkestrel json", "elasticmq query"]
    assert table["txkestrel json"]["send"]["messages_per_second"] == 110
    assert table["txkestrel json"]["receive_delete"]["messages_per_second"] == 250
    assert table["elasticmq query"]["receive_delete"]["messages_per_second"] == 80
    assert "| elasticmq query | 45 | 80 | 10 / 10 us |" in markdown(table).splitlines()
