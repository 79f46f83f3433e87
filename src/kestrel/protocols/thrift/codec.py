"""
Kestrel's Thrift interface (kestrel.thrift, loaded with thriftpy2) and the conversion
between its messages and frames: the arguments of a call, the reply to it, or the
application exception that replaces the reply.

Messages use the strict binary protocol. A frame is decoded only after
`scan.scan_message` has passed it. Strings are decoded as bytes, so that queue
names mean the same bytes as on memcache and text.
"""

from __future__ import annotations

import os

import thriftpy2
from thriftpy2.protocol import TBinaryProtocol
from thriftpy2.thrift import TApplicationException, TMessageType
from thriftpy2.transport import TMemoryBuffer

from kestrel.protocols.thrift.scan import MessageHeader, struct_end

HERE = os.path.dirname(os.path.abspath(__file__))
IDL_PATH = os.path.join(HERE, "kestrel.thrift")

kestrel_thrift = thriftpy2.load(IDL_PATH, module_name="kestrel_thrift")
finagle_thrift = thriftpy2.load(os.path.join(HERE, "finagle.thrift"), module_name="finagle_thrift")
Kestrel = kestrel_thrift.Kestrel
ThriftItem = kestrel_thrift.Item
QueueInfo = kestrel_thrift.QueueInfo
ThriftStatus = kestrel_thrift.Status


class Method:
    """One method of the service: how to read its arguments and write its result."""

    __slots__ = ("name", "args_class", "arg_names", "result_class", "void")

    def __init__(self, name: str):
        self.name = name
        self.args_class = getattr(Kestrel, f"{name}_args")
        # thrift_spec keeps the order of the IDL, which is the handler's argument order.
        self.arg_names = [spec[1] for spec in self.args_class.thrift_spec.values()]
        self.result_class = getattr(Kestrel, f"{name}_result")
        self.void = 0 not in self.result_class.thrift_spec


METHODS: dict[bytes, Method] = {name.encode(): Method(name) for name in Kestrel.thrift_services}


def decode_arguments(frame: bytes, method: Method) -> list:
    """The arguments of the call in `frame`, in IDL order; None for any the client left out."""
    protocol = TBinaryProtocol(TMemoryBuffer(frame), decode_response=False)
    protocol.read_message_begin()
    args = method.args_class()
    protocol.read_struct(args)
    return [getattr(args, name) for name in method.arg_names]


def encode_reply(header: MessageHeader, method: Method, value) -> bytes:
    result = method.result_class()
    if not method.void:
        result.success = value
    return _encode(header, TMessageType.REPLY, result)


def encode_exception(header: MessageHeader, kind: int, message: str) -> bytes:
    return _encode(header, TMessageType.EXCEPTION, TApplicationException(kind, message))


# Finagle's protocol upgrade: the call, and the empty ResponseHeader (an empty struct is its
# STOP byte) that every reply after it carries before its message.
UPGRADE_METHOD = b"__can__finagle__trace__v3__"
EMPTY_STRUCT = b"\x00"


def encode_upgrade_reply(header: MessageHeader) -> bytes:
    """The answer to the upgrade call: a reply holding Finagle's (empty) UpgradeReply."""
    return _encode(header, TMessageType.REPLY, finagle_thrift.UpgradeReply())


def read_request_header(frame: bytes) -> tuple[str | None, int]:
    """
    The client id in the RequestHeader at the start of an upgraded client's frame (None when
    it names none), and the offset of the message after it. Raises MalformedFrame.
    """
    end = struct_end(frame)
    request_header = finagle_thrift.RequestHeader()
    TBinaryProtocol(TMemoryBuffer(frame[:end])).read_struct(request_header)
    client_id = request_header.client_id
    return (client_id.name if client_id is not None else None), end


def _encode(header: MessageHeader, message_type: int, struct) -> bytes:
    buffer = TMemoryBuffer()
    protocol = TBinaryProtocol(buffer)
    protocol.write_message_begin(header.name.decode("utf-8", "replace"), message_type, header.seqid)
    protocol.write_struct(struct)
    protocol.write_message_end()
    return buffer.getvalue()
