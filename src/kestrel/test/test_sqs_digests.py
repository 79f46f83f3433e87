"""
kestrel.sqs.digests against digests Amazon SQS itself returned: the vectors below were
recorded from the live service, both wires (LocalStack's SQS snapshot tests,
`tests/aws/services/sqs/test_sqs.snapshot.json`, which are recorded against AWS).
"""

from __future__ import annotations

import hashlib

import pytest

from kestrel.sqs.digests import md5_of_body, md5_of_message_attributes, md5_of_message_system_attributes


def string(value: str, data_type: str = "String") -> dict[str, str]:
    return {"DataType": data_type, "StringValue": value}


@pytest.mark.parametrize(
    "attributes, digest",
    [
        ({"timestamp": string("1493147359900", "Number")}, "235c5c510d26fb653d073faed50ae77c"),
        ({"MyAttribute": string("foobar")}, "adb59cd4678ea5a855436b949cd07ab6"),
        ({"Hello": string("There")}, "a311262e065454b75da111d535b8dacd"),
        ({"General": string("Kenobi"), "Hello": string("There")}, "fca026605781cb4126a1e9044df24232"),
        (
            {"Help.Me": string("Me"), "Hello": string("There"), "General": string("Kenobi")},
            "4c360f3fdafd970e05fae2f149d997f5",
        ),
        (
            {
                "attr1": {
                    "DataType": "Binary",
                    "BinaryValue": b"traceparent\x1e00-774062d6c37081a5a0b9b5b88e30627c-2d2482211f6489da-01",
                }
            },
            "8cbe4db156db8a94db8b801b7addb984",
        ),
    ],
)
def test_message_attribute_digests_are_the_ones_sqs_returns(attributes, digest):
    assert md5_of_message_attributes(attributes) == digest


def test_the_system_attribute_digest_is_the_one_sqs_returns():
    trace = {
        "AWSTraceHeader": string("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    }
    assert md5_of_message_system_attributes(trace) == "5ae4d5d7636402d80f4eb6d213245a88"


def test_the_body_digest_is_the_md5_of_its_utf8():
    assert md5_of_body("test") == "098f6bcd4621d373cade4e832627b4f6"
    assert md5_of_body("message-1") == "3d6b824fd8c1520e9a047d21fee6fb1f"
    assert md5_of_body("ünï 😀") == hashlib.md5("ünï 😀".encode("utf-8")).hexdigest()


def test_names_are_taken_in_java_order_by_utf16_code_units():
    # U+1F600 sorts after U+FF21 by code point, before it by UTF-16 code unit (0xD83D < 0xFF21).
    astral, fullwidth = "\U0001f600", "\uff21"
    attributes = {fullwidth: string("b"), astral: string("a")}
    assert md5_of_message_attributes(attributes) == _digest_in_order([(astral, "a"), (fullwidth, "b")])
    assert md5_of_message_attributes(attributes) != _digest_in_order([(fullwidth, "b"), (astral, "a")])


def _digest_in_order(pairs: list[tuple[str, str]]) -> str:
    """A digest of String attributes taken in the given order, by the developer guide's recipe."""
    digest = hashlib.md5()
    for name, value in pairs:
        for part in (name.encode(), b"String"):
            digest.update(len(part).to_bytes(4, "big") + part)
        digest.update(b"\x01" + len(value.encode()).to_bytes(4, "big") + value.encode())
    return digest.hexdigest()
