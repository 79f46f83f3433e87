"""Hostile byte streams on the memcache listener: never a crash, never harm to other connections."""

from hypothesis import given, settings
from hypothesis import strategies as st

from kestrel.test.hostile import cuts, hostile_example, restore_status, send_in_pieces
from kestrel.test.test_memcache import connect, value

REQUESTS = [
    b"get q\r\n", b"get q/open\r\n", b"get q/close/open\r\n", b"get q/abort\r\n", b"get q/peek\r\n",
    b"get q/t=5\r\n", b"get q/t=-5\r\n", b"get q/t=abc\r\n", b"get /open\r\n", b"get q/open/peek\r\n",
    b"set q 0 0 3\r\nabc\r\n", b"set q 0 0 3 noreply\r\nabc\r\n", b"set q x 0 3\r\nabc\r\n",
    b"set q 0 x 3\r\nabc\r\n", b"set q 0 99999999999999999999 1\r\nx\r\n", b"set q 0 0 -1\r\n", b"set q 0 0 99999999999\r\n", b"set q 0 0\r\n",
    b"set a.b 0 0 1\r\nx\r\n", b"set q+c+d 0 0 1\r\nx\r\n", b"add q 0 0 1\r\nx\r\n", b"monitor q 1 2\r\n",
    b"monitor q\r\n", b"confirm q 1\r\n", b"confirm q x\r\n", b"delete q\r\n", b"flush q\r\n",
    b"flush_all\r\n", b"flush_expired q\r\n", b"stats\r\n", b"dump_stats q r\r\n", b"status\r\n",
    b"status bogus\r\n", b"status readonly\r\n", b"status up\r\n", b"version\r\n", b"\r\n", b"\n",
    b"gets " + b"k" * 300 + b"\r\n", b"x" * 9000, b"\x00\xff\r\n", b"quit\r\n",
]

streams = st.lists(st.one_of(st.sampled_from(REQUESTS), st.binary(max_size=40)), max_size=12).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(stream=streams, offsets=cuts)
def test_any_byte_stream_gets_replies_or_a_close_and_harms_nobody(stream, offsets):
    with hostile_example(max_open_transactions=2) as kestrel:
        bystander = connect(kestrel)
        kestrel.add("calm", b"kept")
        assert bystander.send(b"get calm/open\r\n") == value(b"calm/open", b"kept")
        waiting = connect(kestrel)
        waiting.send(b"get calm/t=60000\r\n")

        hostile = connect(kestrel)
        send_in_pieces(hostile, stream, offsets)
        kestrel.clock.advance(2)
        hostile.disconnect()
        kestrel.clock.advance(2)
        kestrel.settle()

        # The other connections were not disturbed.
        assert not bystander.closed and not waiting.closed
        restore_status(kestrel)
        assert bystander.send(b"get calm/abort\r\n") == b"END\r\n"
        assert waiting.written() == value(b"calm/t=60000", b"kept")
