"""
The query protocol (older SDKs and other languages): form-encoded parameters in a POST body
or a GET query string, read against the action's input shape; results and errors as SQS's
XML (Amazon SQS API Reference, "Making query API requests" and each action's XML example).

Lists and maps are flattened under their query names, counted from 1: `AttributeName.1`,
`Attribute.1.Name` with `Attribute.1.Value`, `MessageAttribute.1.Value.DataType`. botocore
sends an empty list as its JSON member name with no value (`Entries=`), and an empty map not
at all (so json_wire.py reads an empty map as none, and both wires agree). Parameters outside
the shape (`Version`, a presigned URL's `X-Amz-*`) are not read.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from kestrel.sqs.errors import SqsError, sqs_error
from kestrel.sqs.rules import invalid_integer
from kestrel.sqs.shapes import STRING, ListOf, MapOf, Shape, Structure

CONTENT_TYPE = "text/xml"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
NAMESPACE = "http://queue.amazonaws.com/doc/2012-11-05/"
_INDEX = re.compile(r"[1-9][0-9]{0,8}")
# An integer as SQS reads one; more digits than any range allows are out of range, not parsed.
_INTEGER = re.compile(r"-?[0-9]{1,12}")
# What XML 1.0 cannot carry even escaped (its Char production), and what SQS escapes.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#xD;"})


@dataclass
class _Node:
    """One step of the dotted parameter names: `Attribute.1.Name` is Attribute -> 1 -> Name."""

    value: str | None = None
    children: dict[str, _Node] = field(default_factory=dict)


class QueryForm:
    """The parameters of one request, from its query string and its form body together."""

    def __init__(self, *forms: bytes):
        self._root = _Node()
        for form in forms:
            for name, value in _pairs(form):
                node = self._root
                for step in name.split("."):
                    node = node.children.setdefault(step, _Node())
                if node.value is not None:
                    raise _malformed(f"The parameter {name} is given more than once.")
                node.value = value

    @property
    def action(self) -> str | None:
        node = self._root.children.get("Action")
        return node.value if node else None

    def read(self, shape: Structure) -> dict[str, Any]:
        """The parameters of ``shape``, converted to its types (the JSON protocol's shapes)."""
        return _structure(shape, self._root, "")


def _pairs(form: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(form.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise _malformed("The query string is not UTF-8 form encoding.") from None


def _malformed(message: str) -> SqsError:
    return sqs_error("MalformedQueryString", message)


def _structure(shape: Structure, node: _Node, prefix: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        child = node.children.get(member.query_name)
        if child is not None:
            value = _read(member.shape, child, name, f"{prefix}{member.query_name}")
            if value is not None:
                params[name] = value
        elif isinstance(member.shape, ListOf) and _says_empty(node.children.get(name)):
            params[name] = []
    return params


def _says_empty(node: _Node | None) -> bool:
    """Whether a list's member name came bare and blank, which is how botocore sends an empty list."""
    return node is not None and node.value == "" and not node.children


def _read(shape: Shape, node: _Node, name: str, path: str) -> Any:
    """The value at ``node``, or None when it holds none of ``shape``."""
    if isinstance(shape, Structure):
        return _structure(shape, node, f"{path}.")
    if isinstance(shape, ListOf):
        items = [_read(shape.member, child, name, f"{path}.{index}") for index, child in _indexed(node)]
        return [item for item in items if item is not None] or None
    if isinstance(shape, MapOf):
        pairs = {}
        for index, child in _indexed(node):
            key = _read(STRING, child.children.get(shape.key_name, _Node()), name, "")
            value_node = child.children.get("Value", _Node())
            value = _read(shape.value, value_node, name, f"{path}.{index}.Value")
            if key is None or value is None:
                missing = shape.key_name if key is None else "Value"
                raise sqs_error(
                    "MissingParameter", f"The request must contain the parameter {path}.{index}.{missing}."
                )
            pairs[key] = value
        return pairs or None
    if node.value is None:
        return None
    if shape.type == "integer":
        if not _INTEGER.fullmatch(node.value):
            raise invalid_integer(name, node.value)
        return int(node.value)
    if shape.type == "blob":
        try:
            return base64.b64decode(node.value, validate=True)
        except binascii.Error:
            raise sqs_error("InvalidParameterValue", f"The parameter {path} is not base64.") from None
    return node.value


def _indexed(node: _Node) -> list[tuple[int, _Node]]:
    """The children of a flattened list or map, in the order of their indices."""
    return sorted((int(step), child) for step, child in node.children.items() if _INDEX.fullmatch(step))


def encode_xml_result(action: str, shape: Structure | None, result: dict[str, Any], request_id: str) -> bytes:
    """`<ActionResponse>` with its `<ActionResult>` (none for an action without output)."""
    parts = [f'<?xml version="1.0"?><{action}Response xmlns="{NAMESPACE}">']
    if shape is not None:
        parts.append(f"<{action}Result>")
        _write_members(shape, result, parts)
        parts.append(f"</{action}Result>")
    parts.append(
        f"<ResponseMetadata><RequestId>{_escape(request_id)}</RequestId></ResponseMetadata></{action}Response>"
    )
    return "".join(parts).encode("utf-8")


def encode_xml_error(error: SqsError, request_id: str) -> bytes:
    fault = "Sender" if error.sender else "Receiver"
    return (
        f'<?xml version="1.0"?><ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{fault}</Type>'
        f"<Code>{_escape(error.code)}</Code><Message>{_escape(error.message)}</Message><Detail/></Error>"
        f"<RequestId>{_escape(request_id)}</RequestId></ErrorResponse>"
    ).encode("utf-8")


def _escape(text: str) -> str:
    """Text as SQS writes it in XML: `"` and carriage returns escaped too; what XML cannot hold, U+FFFD."""
    return _NOT_XML.sub("\ufffd", text).translate(_XML_ESCAPES)


def _write_members(shape: Structure, value: dict[str, Any], parts: list[str]) -> None:
    for name, member in shape.members.items():
        if value.get(name) is not None:
            _write(member.shape, member.query_name, value[name], parts)


def _write(shape: Shape, tag: str, value: Any, parts: list[str]) -> None:
    if isinstance(shape, ListOf):
        for item in value:
            _write(shape.member, tag, item, parts)
        return
    if isinstance(shape, MapOf):
        for key, item in value.items():
            parts.append(f"<{tag}><{shape.key_name}>{_escape(key)}</{shape.key_name}>")
            _write(shape.value, "Value", item, parts)
            parts.append(f"</{tag}>")
        return
    parts.append(f"<{tag}>")
    if isinstance(shape, Structure):
        _write_members(shape, value, parts)
    elif shape.type == "blob":
        parts.append(base64.b64encode(value).decode("ascii"))
    elif shape.type == "boolean":
        parts.append("true" if value else "false")
    else:
        parts.append(_escape(str(value)))
    parts.append(f"</{tag}>")
