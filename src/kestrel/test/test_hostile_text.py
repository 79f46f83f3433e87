"""Hostile byte streams on the text listener: never a crash, an error line for each bad request, no harm to others."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from kestrel import PROTOCOL_VERSION
from kestrel.test.hostile import cuts, hostile_example, restore_status, send_in_pieces
from kestrel.test.test_text import connect

# Small limits, so that the streams below reach them.
LIMITS = {"max_line_length": 64, "max_value_size": 256, "max_open_transactions": 2}

VERSION = b":%s\n" % PROTOCOL_VERSION.encode()

# Requests that must each be answered with one `-<message>` line, the connection staying up.
BAD_REQUESTS = [
    b"get\n", b"get \n", b"get q abc\n", b"get q 1.5\n", b"get a/b\n", b"get ../x\n", b"peek\n", b"peek q x\n",
    b"monitor q\n", b"monitor q abc\n", b"monitor\n", b"confirm q\n", b"confirm q x\n", b"confirm q 5\n",
    b"confirm q -1\n", b"flush\n", b"delete\n", b"status bogus\n", b"bogus words\n",
    b"flush_all\n", b"\n", b"\r\n", b"\x00\xff\r\n", b"GET\n", b"put :\nx\n\n", b"put a/b:\nx\ny\n\n",
    b"put q abc:\nx\n\n", b"put q 1e3:\n\n", b"put q " + b"9" * 40 + b":\nx\n\n", b"get:\nx\n\n",
]

# Whole requests, valid and not, for the streams below; `q` only, never the bystanders' queue.
REQUESTS = BAD_REQUESTS + [
    b"put q:\nitem one\nitem two\n\n", b"put q 1000:\nx\n\n", b"put q -5:\n\n", b"PUT q:\r\nx\r\n\r\n", b"put q\n",
    b"put q:\n", b"item\n", b"get q\n", b"get q 100\n", b"get q 0\n", b"get q -1\n", b"GET Q 5\n",
    b"get q 99999999999999999999\n", b"peek q\n", b"peek q 5\n", b"monitor q 100\n", b"monitor q -1\n",
    b"confirm q 1\n", b"flush q\n", b"delete q\n", b"status\n", b"status readonly\n", b"status up\n",
    b"version\n", b"quit\n", b"get " + b"x" * 100 + b"\n", b"put q:\n" + b"y" * 300 + b"\n\n", b"z" * 400,
]

# `+<count>`, `-<message>`, `:<item>` or `*` (doc/compatibility.md §2.1).
REPLY_LINE = re.compile(rb"\+\d+|-.+|:.*|\*", re.DOTALL)

streams = st.lists(st.one_of(st.sampled_from(REQUESTS), st.binary(max_size=40)), max_size=12).map(b"".join)


def reply_lines(output: bytes) -> list[bytes]:
    """The reply lines written; all of them whole."""
    assert output == b"" or output.endswith(b"\n"), output
    return output.split(b"\n")[:-1]


@settings(max_examples=500, deadline=None)
@given(stream=streams, offsets=cuts)
def test_any_byte_stream_gets_reply_lines_or_a_close_and_harms_nobody(stream, offsets):
    with hostile_example(**LIMITS) as kestrel:
        kestrel.add("calm", b"kept")
        bystander = connect(kestrel)
        assert bystander.send(b"get calm\n") == b":kept\n"
        waiting = connect(kestrel)
        assert waiting.send(b"get calm 60000\n") == b""

        hostile = connect(kestrel)
        output = send_in_pieces(hostile, stream, offsets)
        kestrel.clock.advance(2)
        output += hostile.written()
        hostile.disconnect()
        kestrel.settle()

        for line in reply_lines(output):
            assert REPLY_LINE.fullmatch(line), line
            assert not line.startswith(b"-Internal error"), line
        # The other connections were not disturbed: the bystander's read is still open.
        assert not bystander.closed and not waiting.closed
        restore_status(kestrel)
        assert bystander.send(b"version\n") == VERSION
        kestrel.add("calm", b"fresh")
        assert waiting.written() == b":fresh\n"
        assert bystander.send(b"confirm calm 1\n") == b"+1\n"


@settings(max_examples=300, deadline=None)
@given(requests=st.lists(st.sampled_from(BAD_REQUESTS + [b"version\n"]), max_size=15), offsets=cuts)
def test_each_bad_request_gets_one_error_line_and_the_connection_goes_on(requests, offsets):
    with hostile_example(**LIMITS) as kestrel:
        client = connect(kestrel)
        lines = reply_lines(send_in_pieces(client, b"".join(requests), offsets))
        assert len(lines) == len(requests)
        for request, line in zip(requests, lines):
            if request == b"version\n":
                assert line + b"\n" == VERSION
            else:
                assert line.startswith(b"-") and not line.startswith(b"-Internal error"), (request, line)
        assert not client.closed
        assert client.send(b"version\n") == VERSION


@settings(max_examples=100, deadline=None)
@given(prefix=st.lists(st.sampled_from(BAD_REQUESTS + [b"version\n"]), max_size=4).map(b"".join),
       line=st.binary(min_size=66, max_size=300).map(lambda data: data.replace(b"\n", b"_")), offsets=cuts)
def test_an_over_long_line_is_refused_with_an_error_and_closed(prefix, line, offsets):
    with hostile_example(**LIMITS) as kestrel:
        client = connect(kestrel)
        # Without its line feed: the server must not wait for the end of a line it will refuse
        # (66 bytes: the 65th may still be the line's "\r").
        output = send_in_pieces(client, prefix + line, offsets)
        assert reply_lines(output)[-1] == b"-Line longer than 64 bytes."
        assert client.closed
