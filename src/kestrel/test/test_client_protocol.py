"""kestrel.client.protocol: requests to bytes, bytes (in any pieces) to results."""

from datetime import datetime, timedelta, timezone

import pytest

from kestrel.client.protocol import (
    ClientError,
    NotStored,
    ReplyReader,
    RequestError,
    ServerError,
    UnexpectedReply,
    delete_request,
    dump_stats_request,
    flush_request,
    get_request,
    set_request,
    stats_request,
)

NOW = 1_700_000_000.0


def test_set_encodes_the_memcache_storage_command():
    assert set_request("jobs", b"hello").wire == b"set jobs 0 0 5\r\nhello\r\n"
    assert set_request("jobs", b"").wire == b"set jobs 0 0 0\r\n\r\n"
    assert set_request("jobs", b"a\r\nb").wire == b"set jobs 0 0 4\r\na\r\nb\r\n"


def test_expiry_is_seconds_from_now_as_memcache_reads_it():
    # doc/compatibility.md §1.3: under 1,000,000 is relative, above is a Unix time.
    assert set_request("jobs", b"x", 30).wire.startswith(b"set jobs 0 30 1\r\n")
    assert set_request("jobs", b"x", 0.2).wire.startswith(b"set jobs 0 1 1\r\n")  # 0 would mean never
    month = 30 * 24 * 3600
    assert set_request("jobs", b"x", month, now=lambda: NOW).wire.startswith(b"set jobs 0 %d 1\r\n" % (NOW + month))
    at = datetime.fromtimestamp(NOW, timezone.utc) + timedelta(seconds=90)
    assert set_request("jobs", b"x", at, now=lambda: NOW).wire.startswith(b"set jobs 0 90 1\r\n")


@pytest.mark.parametrize("expiry", [0, -5, datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2999, 1, 1)])
def test_an_expiry_that_is_not_in_the_future_or_has_no_zone_is_refused(expiry):
    with pytest.raises(ValueError):
        set_request("jobs", b"x", expiry, now=lambda: NOW)


@pytest.mark.parametrize("name", ["", "a b", "a/b", "a.b", "a~b", "a\r\nset", "x" * 251])
def test_a_name_the_server_would_refuse_fails_before_anything_is_sent(name):
    # doc/compatibility.md §3.1; and no name can smuggle in a second command.
    with pytest.raises(ValueError):
        get_request(name)


def test_items_are_bytes():
    with pytest.raises(TypeError):
        set_request("jobs", "text")


def test_get_options_and_wait_go_in_the_key():
    assert get_request("jobs").wire == b"get jobs\r\n"
    assert get_request("jobs", 1.5).wire == b"get jobs/t=1500\r\n"
    assert get_request("jobs", 0.0001, "open").wire == b"get jobs/open/t=1\r\n"
    assert get_request("jobs", 0, "close").wire == b"get jobs/close\r\n"
    assert get_request("jobs", 0, "close").writes
    assert get_request("jobs", 0, "peek").wire == b"get jobs/peek\r\n"
    assert delete_request("jobs").wire == b"delete jobs\r\n"
    assert flush_request("jobs").wire == b"flush jobs\r\n"
    assert stats_request().wire == b"stats\r\n"
    assert dump_stats_request().wire == b"dump_stats\r\n"


def read(requests, data: bytes, pieces: int = 1):
    reader = ReplyReader()
    for request in requests:
        reader.expect(request)
    results = []
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        results.extend(reader.feed(data[start : start + step]))
    return reader, results


REPLIES = (
    b"STORED\r\nNOT_STORED\r\nVALUE jobs 0 5\r\nhello\r\nEND\r\nEND\r\nVALUE jobs/open 0 4\r\na\r\nb\r\nEND\r\n"
    b"DELETED\r\nEND\r\nSTAT uptime 12\r\nSTAT version 2.4.8\r\nEND\r\n"
    b"queue 'jobs' {\r\n  items=3\r\n  open_transactions=0\r\n}\r\nqueue 'a_b' {\r\n  items=0\r\n}\r\nEND\r\n"
)
REQUESTS = [
    set_request("jobs", b"x"), set_request("jobs", b"x"), get_request("jobs"), get_request("jobs"),
    get_request("jobs", 0, "open"), delete_request("jobs"), flush_request("jobs"), stats_request(), dump_stats_request(),
]


@pytest.mark.parametrize("pieces", [1, 7, len(REPLIES)])
def test_every_reply_in_any_pieces(pieces):
    reader, results = read(REQUESTS, REPLIES, pieces)
    assert [result.value for result in results] == [
        None, None, b"hello", None, b"a\r\nb", None, None,
        {"uptime": 12, "version": "2.4.8"},
        {"jobs": {"items": 3, "open_transactions": 0}, "a_b": {"items": 0}},
    ]
    assert isinstance(results[1].error, NotStored)
    assert [result.error for result in results if result.error is not results[1].error] == [None] * 8
    assert reader.waiting == 0


def test_a_partial_reply_completes_nothing_until_its_last_line():
    reader, results = read([get_request("jobs")], b"VALUE jobs 0 5\r\nhel")
    assert results == [] and reader.waiting == 1
    assert reader.feed(b"lo\r\nEN") == []
    assert [result.value for result in reader.feed(b"D\r\n")] == [b"hello"]


@pytest.mark.parametrize(
    "line, error, message",
    [
        (b"CLIENT_ERROR bad exptime\r\n", ClientError, "bad exptime"),
        (b"SERVER_ERROR server status Quiescent\r\n", ServerError, "server status Quiescent"),
        (b"ERROR\r\n", RequestError, "ERROR"),
    ],
)
def test_error_replies_become_exceptions(line, error, message):
    for request in (set_request("jobs", b"x"), get_request("jobs"), stats_request()):
        _, [result] = read([request], line)
        assert isinstance(result.error, error) and str(result.error) == message
        with pytest.raises(error):
            result.unwrap()


@pytest.mark.parametrize(
    "request_, data",
    [
        (set_request("jobs", b"x"), b"END\r\n"),
        (get_request("jobs"), b"STORED\r\n"),
        (get_request("jobs"), b"VALUE jobs 0 2\r\nabc\r\nEND\r\n"),  # the value is not where its length says
        (get_request("jobs"), b"VALUE jobs 0 1\r\nx\r\nVALUE jobs 0 1\r\ny\r\nEND\r\n"),
        (stats_request(), b"uptime 12\r\nEND\r\n"),
        (dump_stats_request(), b"items=3\r\nEND\r\n"),
        (delete_request("jobs"), b"DELETED\r\nEND\r\n"),  # bytes nobody asked for
    ],
)
def test_bytes_that_answer_nothing_asked_are_unexpected(request_, data):
    with pytest.raises(UnexpectedReply):
        read([request_], data)


def test_an_endless_line_is_unexpected():
    reader = ReplyReader(max_line=100)
    reader.expect(get_request("jobs"))
    with pytest.raises(UnexpectedReply):
        reader.feed(b"V" * 101)
