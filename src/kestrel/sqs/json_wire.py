"""
The JSON protocol's bodies (AWS JSON 1.0, as current SDKs speak SQS): a request's JSON object
read against the action's input shape, a result or an error written as SQS writes them.
Blobs travel as base64 strings; null means absent, as the protocol has it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from kestrel.sqs.errors import SqsError, json_type, sqs_error
from kestrel.sqs.shapes import ListOf, MapOf, Scalar, Shape, Structure

CONTENT_TYPE = "application/x-amz-json-1.0"
# A lone surrogate: JSON can escape one (`"\ud800"`), no UTF-8 text can hold it.
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_TYPES: dict[type, str] = {dict: "an object", list: "an array", str: "a string", int: "an integer"}


def decode_json(shape: Structure, body: bytes) -> dict[str, Any]:
    """The parameters of a request body; SerializationException for one that is not the shape's."""
    try:
        document = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError: not JSON, or an integer past Python's digit limit; RecursionError: nesting.
        raise _unreadable("The request body is not a JSON document.") from None
    return _structure(shape, _expect(document, dict, "the request body"))


def _read(shape: Shape, value: Any, where: str) -> Any:
    if isinstance(shape, Structure):
        return _structure(shape, _expect(value, dict, where))
    if isinstance(shape, ListOf):
        return [
            _read(shape.member, item, f"{where}[{index}]")
            for index, item in enumerate(_expect(value, list, where))
        ]
    if isinstance(shape, MapOf):
        return {
            _text(key, f"a key of {where}"): _read(shape.value, item, f"{where}.{key}")
            for key, item in _expect(value, dict, where).items()
        }
    return _scalar(shape, value, where)


def _structure(shape: Structure, value: dict[str, Any]) -> dict[str, Any]:
    # An empty map is none: the query protocol cannot send one (query_wire.py).
    return {
        name: _read(member.shape, value[name], name)
        for name, member in shape.members.items()
        if value.get(name) is not None and not (isinstance(member.shape, MapOf) and value[name] == {})
    }


def _scalar(shape: Scalar, value: Any, where: str) -> Any:
    if shape.type == "integer":
        return _expect(value, int, where)
    text = _text(value, where)
    if shape.type == "blob":
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error:
            raise _unreadable(f"{where} is not base64.") from None
    return text


def _text(value: Any, where: str) -> str:
    text: str = _expect(value, str, where)
    if _SURROGATE.search(text):
        raise _unreadable(f"{where} is not valid Unicode text.")
    return text


def _expect(value: Any, kind: type, where: str) -> Any:
    # bool is an int to Python, never to JSON.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _unreadable(f"{where} must be {_JSON_TYPES[kind]}.")
    return value


def _unreadable(message: str) -> SqsError:
    return sqs_error("SerializationException", message)


def encode_json_result(shape: Structure | None, result: dict[str, Any]) -> bytes:
    """A result's body: the output shape's members as JSON, `{}` for an action without output."""
    return _dump(_write(shape, result) if shape else {})


def encode_json_error(error: SqsError) -> bytes:
    return _dump({"__type": json_type(error), "message": error.message})


def _write(shape: Shape, value: Any) -> Any:
    if isinstance(shape, Structure):
        return {
            name: _write(member.shape, value[name])
            for name, member in shape.members.items()
            if value.get(name) is not None
        }
    if isinstance(shape, ListOf):
        return [_write(shape.member, item) for item in value]
    if isinstance(shape, MapOf):
        return {key: _write(shape.value, item) for key, item in value.items()}
    if shape.type == "blob":
        return base64.b64encode(value).decode("ascii")
    return value


def _dump(document: dict[str, Any]) -> bytes:
    # A lone surrogate (one an error message quotes) becomes `\udXXX`, which is JSON's own
    # escape for it: the body stays UTF-8 and says what the text said.
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")
