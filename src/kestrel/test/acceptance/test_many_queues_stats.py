"""
A real server with 3,000 queues and low listing limits (issue 15): memcache `stats`,
`/stats.json`, `/metrics` and `kestrel stats PREFIX*` give totals, the queues asked for and
how many they left out, and label only the bounded set of queues.
"""

import json
import re

from kestrel.load.process import free_port
from kestrel.load.queue_creation import create_queues
from kestrel.test.acceptance.test_admin_http import metrics
from kestrel.test.acceptance.test_tools import kestrel_command

QUEUES = 3000
# q7, q70..q79 and q700..q799
UNDER_Q7 = 111
Q7_ITEMS = re.compile(r"(STAT )?queue_q7[0-9]*_items 1")


def test_stats_with_more_queues_than_the_limit(make_server):
    kestrel = make_server(server="\n".join([
        f'admin_listen = "tcp:{free_port()}:interface=127.0.0.1"',
        "stats_queue_limit = 500",
        "metrics_top_queues = 5",
        'metrics_queue_prefixes = ["q7"]',
    ]))
    create_queues(kestrel, QUEUES, 500, b"x")
    client = kestrel.client()
    for _ in range(3):
        assert client.set("q2999", b"more") == b"STORED"

    stats = client.stats()
    assert (stats["curr_items"], stats["queues_omitted"]) == (str(QUEUES + 3), str(QUEUES))
    assert not any(key.endswith("_items") and key.startswith("queue_q") for key in stats)
    client.send(b"stats q7\r\n")
    lines = []
    while (line := client.line()) != b"END":
        lines.append(line.decode())
    assert sum(bool(Q7_ITEMS.fullmatch(line)) for line in lines) == UNDER_Q7
    assert "STAT queue_q777_items 1" in lines and not any(line.startswith("STAT queues_omitted") for line in lines)

    everything = kestrel.admin("GET", "/stats.json").json()
    assert (everything["queues"], everything["queue_count"], everything["queues_omitted"]) == ({}, QUEUES, QUEUES)
    assert everything["server"]["curr_items"] == QUEUES + 3
    deepest = kestrel.admin("GET", "/stats.json?top=3").json()
    assert list(deepest["queues"]) == ["q2999", "q0", "q1"]
    assert deepest["queues"]["q2999"]["items"] == 4
    limited = kestrel.admin("GET", "/stats.json?prefix=q7&limit=10").json()
    assert (len(limited["queues"]), limited["queues_omitted"]) == (10, UNDER_Q7 - 10)

    samples = metrics(kestrel)
    labelled = {dict(labels)["queue"] for name, labels in samples if name == "kestrel_queue_items"}
    assert len(labelled) == 5 + UNDER_Q7
    assert {"q2999", "q0", "q1", "q2", "q3", "q7", "q799"} <= labelled  # equal depths: the first created
    assert samples[("kestrel_items", ())] == QUEUES + 3
    assert samples[("kestrel_unlabelled_queues", ())] == QUEUES - len(labelled)

    by_prefix = kestrel_command("stats", "q7*", config=kestrel.config)
    assert by_prefix.returncode == 0, by_prefix.stderr
    text = by_prefix.stdout.splitlines()
    assert sum(bool(Q7_ITEMS.fullmatch(line)) for line in text) == UNDER_Q7
    assert not any(line.startswith("queues_omitted") for line in text)
    top = kestrel_command("stats", "--top", "2", "--json", config=kestrel.config)
    assert list(json.loads(top.stdout)["queues"]) == ["q2999", "q0"]
