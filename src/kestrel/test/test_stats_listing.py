"""
Stats with many queues (issue 15): memcache `stats` and `dump_stats`, `/stats.json`,
`/stats.txt`, `/metrics` and `kestrel top` list every queue while there are few, and above
the config's limits give totals, the queues asked for (a name, a prefix, the deepest) and how
many they left out.
"""

import json
import tomllib

import pytest

from kestrel.admin.http import AdminResource
from kestrel.client.protocol import parse_dump_stats
from kestrel.config import ConfigError, parse_config
from kestrel.stats_listing import by_name, deepest, split_selectors
from kestrel.test.support import ServerHarness
from kestrel.test.test_admin_http import call
from kestrel.test.test_memcache import END, GLOBAL_STATS, connect, parse_stats
from kestrel.test.test_metrics import scrape
from kestrel.tools.top import Sample, frame


@pytest.fixture
def kestrel(harness) -> ServerHarness:
    """Seven queues (depths 0 to 6) and an alias, with a listing limit of five."""
    server = ServerHarness(
        harness, stats_queue_limit=5, metrics_top_queues=2, metrics_queue_prefixes=("mail_",),
        aliases={"all_jobs": ("jobs_1", "jobs_2")},
    )
    for depth, name in enumerate(["jobs_0", "jobs_1", "jobs_2", "jobs_3", "mail_4", "mail_5", "other_6"]):
        server.collection.queue(name)
        server.add(name, *[b"x"] * depth)
    return server


def queue_names(stats: list[tuple[str, str]]) -> list[str]:
    """The queues a `stats` reply lists, by their last stat."""
    return [name[len("queue_"):-len("_dead_lettered")] for name, _ in stats if name.endswith("_dead_lettered")]


# Choosing the queues


def test_few_queues_are_all_listed_by_name(harness):
    kestrel = ServerHarness(harness, stats_queue_limit=3, aliases={"all": ("b",)})
    for name in ("b", "a"):
        kestrel.collection.queue(name)
    listing = by_name(kestrel.collection, 3)
    assert (listing.names, listing.matched, listing.omitted) == (["a", "all", "b"], 3, 0)


def test_above_the_limit_a_listing_without_names_lists_none(kestrel):
    listing = by_name(kestrel.collection, 5)
    assert (listing.names, listing.matched, listing.omitted) == ([], 8, 8)


def test_a_prefix_lists_the_first_by_name_up_to_the_limit(kestrel):
    listing = by_name(kestrel.collection, 3, prefixes=["jobs_"])
    assert (listing.names, listing.omitted) == (["jobs_0", "jobs_1", "jobs_2"], 1)
    both = by_name(kestrel.collection, 5, ["other_6"], ["mail_", "all"])
    assert (both.names, both.omitted) == (["other_6", "all_jobs", "mail_4", "mail_5"], 0)


def test_the_deepest_queues_come_first(kestrel):
    listing = deepest(kestrel.collection, 3)
    assert (listing.names, listing.omitted) == (["other_6", "mail_5", "mail_4"], 4)


def test_a_selector_ending_in_a_star_is_a_prefix():
    assert split_selectors(["jobs*", "mail", "*"]) == (["mail"], ["jobs", ""])


# memcache


def test_memcache_stats_above_the_limit_gives_totals_and_how_many_it_left_out(kestrel):
    stats = parse_stats(connect(kestrel).send(b"stats\r\n"))
    assert [name for name, _ in stats] == GLOBAL_STATS + ["queues_omitted"]
    values = dict(stats)
    assert (values["curr_items"], values["queues_omitted"]) == ("21", "8")


def test_memcache_stats_with_a_prefix_lists_those_queues(kestrel):
    client = connect(kestrel)
    stats = parse_stats(client.send(b"stats mail_\r\n"))
    assert queue_names(stats) == ["mail_4", "mail_5"]
    assert "queues_omitted" not in dict(stats)
    assert parse_stats(client.send(b"stats jobs_*\r\n"))[len(GLOBAL_STATS):] == parse_stats(client.send(b"stats jobs_\r\n"))[len(GLOBAL_STATS):]
    assert dict(parse_stats(client.send(b"stats \r\n")))["queues_omitted"] == "8"  # python-memcached's trailing space


def test_memcache_dump_stats_above_the_limit_and_with_a_prefix(kestrel):
    client = connect(kestrel)
    assert client.send(b"dump_stats\r\n") == b"STAT queues_omitted 8\r\nEND\r\n"
    reply = client.send(b"dump_stats other_6 mail_*\r\n").decode()
    assert [line for line in reply.split("\r\n") if line.startswith("queue ")] == [
        "queue 'other_6' {", "queue 'mail_4' {", "queue 'mail_5' {",
    ]
    assert reply.endswith("}\r\nEND\r\n")
    assert client.send(b"dump_stats nothing*\r\n") == END
    assert parse_dump_stats(["queue 'a' {", "  items=1", "}", "STAT queues_omitted 8"]) == {"a": {"items": 1}}


def test_a_prefix_over_the_limit_says_how_many_it_left_out(harness):
    kestrel = ServerHarness(harness, stats_queue_limit=2)
    for index in range(5):
        kestrel.collection.queue(f"q{index}")
    stats = parse_stats(connect(kestrel).send(b"stats q\r\n"))
    assert queue_names(stats) == ["q0", "q1"]
    assert dict(stats)["queues_omitted"] == "3"


# Admin HTTP


def test_stats_json_above_the_limit_gives_totals_and_the_count(kestrel):
    stats = call(AdminResource(kestrel.server), "GET", "/stats.json").json()
    assert stats["queues"] == {}
    assert (stats["server"]["curr_items"], stats["queue_count"], stats["queues_omitted"]) == (21, 7, 8)


def test_stats_json_by_prefix_limit_and_top(kestrel):
    admin = AdminResource(kestrel.server)
    by_prefix = call(admin, "GET", "/stats.json", prefix="jobs_", limit="2").json()
    assert (list(by_prefix["queues"]), by_prefix["queues_omitted"]) == (["jobs_0", "jobs_1"], 2)
    top = call(admin, "GET", "/stats.json", top="2").json()
    assert (list(top["queues"]), top["queues_omitted"]) == (["other_6", "mail_5"], 5)
    assert top["queues"]["other_6"]["items"] == 6
    capped = call(admin, "GET", "/stats.json", top="100").json()
    assert len(capped["queues"]) == 5  # never more than stats_queue_limit
    refused = call(admin, "GET", "/stats.json", top="many")
    assert (refused.code, refused.json()) == (400, {"error": "top takes one whole number, got 'many'"})


def test_stats_text_above_the_limit_ends_with_how_many_it_left_out(kestrel):
    lines = call(AdminResource(kestrel.server), "GET", "/stats.txt").body.decode().splitlines()
    assert lines[-1] == "queues_omitted 8"
    assert not any(line.endswith("_dead_lettered 0") for line in lines)
    mail = call(AdminResource(kestrel.server), "GET", "/stats.txt", prefix="mail_").body.decode().splitlines()
    assert "queue_mail_4_items 4" in mail and not mail[-1].startswith("queues_omitted")


def test_few_queues_list_in_full_with_nothing_left_out(harness):
    kestrel = ServerHarness(harness)
    kestrel.add("jobs", b"one")
    stats = call(AdminResource(kestrel.server), "GET", "/stats.json").json()
    assert (list(stats["queues"]), stats["queue_count"], stats["queues_omitted"]) == (["jobs"], 1, 0)


# /metrics


def test_metrics_label_the_deepest_and_the_prefixed_queues_only(kestrel):
    samples = scrape(kestrel.server)
    labelled = sorted({dict(labels)["queue"] for (name, labels) in samples if name == "kestrel_queue_items"})
    assert labelled == ["mail_4", "mail_5", "other_6"]
    assert samples[("kestrel_unlabelled_queues", ())] == 4
    assert (samples[("kestrel_items", ())], samples[("kestrel_put_items_total", ())]) == (21, 21)
    assert samples[("kestrel_queues", ())] == 7


def test_metrics_without_top_queues_or_prefixes_label_none(harness):
    kestrel = ServerHarness(harness, metrics_top_queues=0)
    kestrel.add("jobs", b"one")
    samples = scrape(kestrel.server)
    assert not any(name.startswith("kestrel_queue_") for name, _ in samples)
    assert (samples[("kestrel_items", ())], samples[("kestrel_unlabelled_queues", ())]) == (1, 1)


# kestrel top


def test_top_shows_no_rate_for_a_queue_that_only_entered_the_deepest(kestrel):
    admin = AdminResource(kestrel.server)
    before = call(admin, "GET", "/stats.json", top="1").json()
    kestrel.add("mail_5", *[b"x"] * 5)
    after = call(admin, "GET", "/stats.json", top="1").json()
    view = frame(Sample(0.0, "Up", before), Sample(1.0, "Up", after))
    assert [(row.name, row.adds_per_second) for row in view.queues] == [("mail_5", 0.0)]
    assert view.queue_count == 7


# Config


@pytest.mark.parametrize(
    "toml_text, message",
    [
        ("stats_queue_limit = -1", "[server] stats_queue_limit: expected a non-negative integer, got -1"),
        ("metrics_top_queues = 'ten'", "[server] metrics_top_queues: expected a non-negative integer, got 'ten'"),
        (
            "metrics_queue_prefixes = 'jobs'",
            "[server] metrics_queue_prefixes: expected a list of queue-name prefixes such as [\"jobs_\", \"audit\"], got 'jobs'",
        ),
        (
            "metrics_queue_prefixes = ['']",
            "[server] metrics_queue_prefixes: expected a list of queue-name prefixes such as [\"jobs_\", \"audit\"], got ['']",
        ),
    ],
)
def test_config_errors_name_the_key(toml_text, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(tomllib.loads(f'[server]\nqueue_path = "/q"\n{toml_text}'), "kestrel.conf", "/etc")
    assert str(caught.value) == f"kestrel.conf: {message}"


def test_config_defaults_and_values():
    default = parse_config(tomllib.loads('[server]\nqueue_path = "/q"'), "kestrel.conf", "/etc")
    assert (default.stats_queue_limit, default.metrics_top_queues, default.metrics_queue_prefixes) == (1000, 100, ())
    given = parse_config(tomllib.loads(
        '[server]\nqueue_path = "/q"\nstats_queue_limit = 50\nmetrics_top_queues = 5\nmetrics_queue_prefixes = ["jobs_"]'
    ), "kestrel.conf", "/etc")
    assert (given.stats_queue_limit, given.metrics_top_queues, given.metrics_queue_prefixes) == (50, 5, ("jobs_",))


# Many queues, cheaply


def test_twenty_thousand_empty_queues_answer_in_a_few_lines(harness):
    kestrel = ServerHarness(harness)
    for index in range(20_000):
        kestrel.collection.queue(f"q{index:05}")
    kestrel.add("q12345", b"deep")
    reply = connect(kestrel).send(b"stats\r\n")
    assert reply.count(b"\r\n") == len(GLOBAL_STATS) + 2
    assert len(json.dumps(call(AdminResource(kestrel.server), "GET", "/stats.json").json())) < 2000
    labelled = {dict(labels)["queue"] for (name, labels) in scrape(kestrel.server) if name == "kestrel_queue_items"}
    assert len(labelled) == 100 and "q12345" in labelled
