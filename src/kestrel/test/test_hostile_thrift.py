"""
Hostile frames and byte streams on the Thrift listener: never a crash or a spin, an
application exception for each bad call (or a clean close), no harm to other connections.
"""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from thriftpy2.thrift import TApplicationException, TMessageType

from kestrel import PROTOCOL_VERSION
from kestrel.protocols.thrift.codec import ThriftItem, ThriftStatus
from kestrel.test.hostile import cuts, hostile_example, pieces, restore_status
from kestrel.test.test_thrift import ThriftServer, call_frame, call_of, framed, message

# Small limits, so that the streams below reach them.
FRAME_LIMIT = 512
LIMITS = {"max_value_size": FRAME_LIMIT, "max_open_transactions": 2}
# The longest wait a call can ask for: an i32 of milliseconds.
LONGEST_WAIT = 2**31 / 1000

# Calls a client may send, good and refused; on `q` only, never the bystanders' queue, and
# no status that ends the bystanders' reads (quiescent).
CALLS = [
    message("put", "q", [b"a", b"b"]), message("put", "q", [b"x"], 1000), message("put", "q", [], -5),
    message("put", "", [b"x"]), message("put", "a/b", [b"x"]), message("get", "q", 2), message("get", "q", 1, 100),
    message("get", "q", 2, 0, 500), message("get", "q", -1, -1, -1), message("get", "q", 2**31 - 1),
    message("confirm", "q", {1000, 2**40}), message("abort", "q", {-1, 1000}), message("confirm", "q", set()),
    message("peek", "q"), message("peek", ""), message("flush_queue", "q"), message("flush_all_queues"),
    message("delete_queue", "q"), message("delete_queue", "../x"), message("current_status"),
    message("set_status", ThriftStatus.READ_ONLY), message("set_status", ThriftStatus.UP), message("set_status", 99),
    message("get_version"),
]
# Calls whose bytes are mutated: none that could turn into a confirm of a bystander's handle or a status change.
MUTABLE_CALLS = [message("put", "q", [b"abc", b""], 5), message("get", "q", 3, 100, 100), message("peek", "q"), message("get_version")]
# Arguments that declare more than the frame holds, or nest too deep (after a put's header).
HUGE_DECLARATIONS = [
    b"\x0b\x00\x01\x7f\xff\xff\xff", b"\x0b\x00\x01\xff\xff\xff\xf0\x00", b"\x0f\x00\x02\x0b\x7f\xff\xff\xff\x00",
    b"\x0f\x00\x02\x00\x7f\xff\xff\xff\x00", b"\x0f\x00\x02\x10\x7f\xff\xff\xff\x00", b"\x0d\x00\x02\x0b\x0b\x7f\xff\xff\xff",
    b"\x0e\x00\x02\x02\x7f\xff\xff\xff" + b"\x00" * 100, b"\x0c\x00\x01" * 40 + b"\x00" * 41,
]
PUT_HEADER = message("put")[:-1]


def header_length(body: bytes) -> int:
    """The bytes of a strict message header: version, name, sequence id."""
    return 12 + struct.unpack_from("!i", body, 4)[0]


def with_seqid(body: bytes, seqid: int) -> bytes:
    end = header_length(body)
    return body[:end - 4] + struct.pack("!i", seqid) + body[end:]


def renamed(body: bytes, name: bytes) -> bytes:
    """The call in `body`, to the method `name`."""
    return call_of(name, body[header_length(body):])


def with_type(body: bytes, message_type: int) -> bytes:
    return body[:3] + bytes([message_type]) + body[4:]


@st.composite
def mutated(draw, body: bytes) -> bytes:
    """`body` with a few bytes after its header overwritten, often with the bytes that mean a type or a huge count."""
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(header_length(body), len(data) - 1))
        data[position] = draw(st.one_of(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x0B, 0x0C, 0x0D, 0x0F]), st.integers(0, 255)))
    return bytes(data)


@st.composite
def truncated(draw, body: bytes) -> bytes:
    """`body` cut short after its header: what a client that lost its place sends."""
    return body[:draw(st.integers(header_length(body), len(body) - 1))]


# Message bodies with a readable strict header, each with what its reply must be: an
# application exception of one type, or None for any reply or exception.
refused_bodies = st.one_of(
    st.sampled_from(CALLS).flatmap(truncated).map(lambda body: (body, TApplicationException.PROTOCOL_ERROR)),
    st.sampled_from(HUGE_DECLARATIONS).map(lambda args: (PUT_HEADER + args, TApplicationException.PROTOCOL_ERROR)),
    st.tuples(st.sampled_from(CALLS), st.sampled_from([TMessageType.REPLY, TMessageType.EXCEPTION, TMessageType.ONEWAY, 9])).map(
        lambda pair: (with_type(*pair), TApplicationException.INVALID_MESSAGE_TYPE)),
    st.tuples(st.sampled_from(CALLS), st.sampled_from([b"nope", b"", b"\xff\xfe", b"get_version2"])).map(
        lambda pair: (renamed(*pair), TApplicationException.UNKNOWN_METHOD)),
)
any_bodies = st.one_of(
    st.sampled_from(CALLS).map(lambda body: (body, None)),
    st.sampled_from(MUTABLE_CALLS).flatmap(mutated).map(lambda body: (body, None)),
    st.tuples(st.sampled_from([b"get", b"put", b"confirm"]), st.binary(max_size=40)).map(lambda pair: (call_of(*pair), None)),
)
bodies = st.one_of(refused_bodies, any_bodies)


def oversized(body: bytes) -> bytes:
    """`body` padded past the frame limit, framed with its true length."""
    return framed(body + b"\x00" * (FRAME_LIMIT + 1 - len(body)))


# Byte streams: frames of the bodies above (some over the limit), frame lengths far over
# the limit with little behind them, and bytes at random.
streams = st.lists(
    st.one_of(
        bodies.map(lambda pair: framed(pair[0])),
        bodies.map(lambda pair: oversized(pair[0])),
        st.tuples(st.integers(FRAME_LIMIT + 1, 2**32 - 1), st.sampled_from(CALLS)).map(lambda pair: struct.pack("!I", pair[0]) + pair[1]),
        st.binary(max_size=40),
    ),
    max_size=10,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(stream=streams, offsets=cuts)
def test_any_byte_stream_gets_replies_or_a_close_and_harms_nobody(stream, offsets):
    with hostile_example(**LIMITS) as kestrel:
        thrift = ThriftServer(kestrel)
        kestrel.add("calm", b"kept")
        bystander = thrift.connect()
        (opened,) = bystander.call("get", "calm", 1, 0, 60000)
        waiting = thrift.connect()
        assert waiting.send(call_frame("get", "calm", 1, 60000)) == []

        hostile = thrift.connect()
        for piece in pieces(stream, offsets):
            hostile.protocol.dataReceived(piece)
        kestrel.clock.advance(2)
        # Each frame written decodes as a reply or an application exception.
        for reply in hostile.replies():
            assert reply.type in (TMessageType.REPLY, TMessageType.EXCEPTION)
        hostile.disconnect()
        kestrel.settle()

        assert not bystander.closed and not waiting.closed
        restore_status(kestrel)
        assert bystander.call("get_version") == PROTOCOL_VERSION
        kestrel.add("calm", b"fresh")
        assert [reply.value for reply in waiting.replies()] == [[ThriftItem(data=b"fresh", id=0)]]
        assert bystander.call("confirm", "calm", {opened.id}) == 1


# (body, the application exception its reply must be or None, how it is framed): any
# body over the frame limit is refused for that.
framed_bodies = st.one_of(
    bodies.map(lambda pair: (*pair, framed)),
    bodies.map(lambda pair: (pair[0], TApplicationException.PROTOCOL_ERROR, oversized)),
)


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(framed_bodies, max_size=8), offsets=cuts)
def test_each_frame_gets_one_reply_in_order_and_each_bad_one_an_application_exception(messages, offsets):
    with hostile_example(**LIMITS) as kestrel:
        client = ThriftServer(kestrel).connect()
        stream = b"".join(frame(with_seqid(body, seqid)) for seqid, (body, _, frame) in enumerate(messages))
        for piece in pieces(stream, offsets):
            client.protocol.dataReceived(piece)
        # Let every call that waits (at most the longest wait each) give its answer.
        for _ in messages:
            kestrel.clock.advance(LONGEST_WAIT)
        replies = client.replies()
        assert [reply.seqid for reply in replies] == list(range(len(messages)))
        for reply, (body, refusal, _) in zip(replies, messages):
            if refusal is not None:
                assert reply.error is not None and reply.error.type == refusal, (body, reply.error)
        assert not client.closed
        assert client.call("get_version") == PROTOCOL_VERSION


def test_a_huge_declared_frame_is_refused_as_soon_as_its_header_is_in():
    with hostile_example(**LIMITS) as kestrel:
        client = ThriftServer(kestrel).connect()
        # Two gigabytes declared, a call's worth sent: the client must not have to send the rest to hear why.
        (reply,) = client.send(struct.pack("!I", 2**31) + message("put", "q", [b"x"], seqid=7))
        assert (reply.name, reply.seqid, reply.error.type) == ("put", 7, TApplicationException.PROTOCOL_ERROR)
        assert "larger than the limit of 512" in reply.error.message
        assert client.send(b"\x00" * 100_000) == []
        assert not client.closed
