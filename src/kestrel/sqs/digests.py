"""
The MD5 digests SQS returns with a message (`MD5OfMessageBody`, `MD5OfBody`,
`MD5OfMessageAttributes`, `MD5OfMessageSystemAttributes`), which SDKs check against their
own (the AWS SDK for Java's MessageMD5ChecksumHandler and its Go and .NET peers; boto3 does
not check them). Amazon SQS Developer Guide, "Calculating the MD5 message digest for
message attributes": the attributes in order of name, each as its name, its data type, a
transport byte and its value, every string and value prefixed by its length as 4 bytes big-endian.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Mapping

# The transport byte: which value member the attribute carries.
STRING_TRANSPORT = b"\x01"
BINARY_TRANSPORT = b"\x02"


def md5_of_body(body: str) -> str:
    return hashlib.md5(body.encode("utf-8")).hexdigest()


def md5_of_message_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """
    The digest of message attributes in the calls' shape (`{name: {"DataType",
    "StringValue" | "BinaryValue"}}`); SQS sends none for a message without attributes.
    """
    digest = hashlib.md5()
    # SQS sorts as Java does, by UTF-16 code units; a name above U+FFFF sorts apart from code point order.
    for name in sorted(attributes, key=lambda name: name.encode("utf-16-be")):
        value = attributes[name]
        digest.update(_prefixed(name.encode("utf-8")))
        digest.update(_prefixed(value["DataType"].encode("utf-8")))
        if "StringValue" in value:
            digest.update(STRING_TRANSPORT + _prefixed(value["StringValue"].encode("utf-8")))
        else:
            digest.update(BINARY_TRANSPORT + _prefixed(value["BinaryValue"]))
    return digest.hexdigest()


# A message's system attributes (`AWSTraceHeader`) are digested as its attributes are.
md5_of_message_system_attributes = md5_of_message_attributes


def _prefixed(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data
