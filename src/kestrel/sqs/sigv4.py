"""
AWS Signature Version 4, checked as the AWS SDKs sign SQS requests: the ``Authorization``
header, and presigned query strings (``X-Amz-Signature=...`` in the URL). Pure functions
of the request's bytes and a given time: no I/O, no clock of their own.

The canonical request is rebuilt from what arrived, the way botocore builds it when it
signs (botocore/auth.py, ``SigV4Auth.canonical_request``) and AWS describes it ("Create a
canonical request for Signature Version 4", IAM user guide):

- the path with dot segments and empty segments removed, then percent-encoded once more
  (SigV4 encodes the path twice for every service but S3: once on the wire, once here);
- the query's ``name=value`` pairs percent-decoded (``+`` is a space: botocore sends a space
  in a query value as ``+`` and signs it as ``%20``, and curl 8 reads it so), encoded again
  with only RFC 3986's unreserved characters left bare, and sorted;
- the signed headers, ``name:value`` with runs of whitespace in the value made one space;
- the ``x-amz-content-sha256`` header, or else the SHA-256 of the body.

curl before 8.x (``--aws-sigv4``, lib/http_aws_sigv4.c) signed the query as it sent it,
unsorted; a header-signed request whose canonical form does not match is therefore also
checked with its query exactly as it arrived. That admits nothing new: a query string
that is some other query's canonical form is its own canonical form too, and means the
same pairs. (curl also signed the path as it sent it, encoded once; for the paths of SQS
queue URLs, whose names need no encoding, that is the canonical form. The path gets no
such second try: a path sent already encoded twice would verify with the signature of
another path.)

``X-Amz-Security-Token`` (temporary credentials, header or query) is ignored: txkestrel
issues none, and the access key alone names the application.

``sign`` signs a request the same way, with an Authorization header over Host and
X-Amz-Date, for txkestrel's own clients (`kestrel history`), which need no botocore.
"""

from __future__ import annotations

import calendar
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import mktime_tz, parsedate_tz
from hashlib import sha256
from urllib.parse import quote, unquote_to_bytes

from kestrel.sqs.errors import SqsError, sqs_error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sqs"
TERMINATOR = "aws4_request"
# How far a request's date may be from the server's clock (the AWS common error
# RequestExpired: "more than 15 minutes after the date stamp ... or more than 15 minutes
# in the future").
MAX_SKEW = 15 * 60
# The longest X-Amz-Expires SigV4 allows a presigned URL: 7 days.
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# The region ``sign`` names: the server takes any (``_credential``), and SDKs default to this one.
DEFAULT_REGION = "us-east-1"
# The headers ``sign`` signs: the request's Host, and the X-Amz-Date it adds.
_SIGNED_BY_SIGN = "host;x-amz-date"

_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_TIMESTAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z")
# quote() never encodes letters, digits and "_.-~"; these are RFC 3986's unreserved characters.
_UNRESERVED = "-_.~"
# The query parameters of a presigned URL, each needed once.
_PRESIGNED_PARAMETERS = (
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature",
)
# Any of these in the query makes the request a presigned one, to be checked as such.
_PRESIGNED_MARKS = frozenset({"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"})
_SIGNATURE_PARAMETER = b"X-Amz-Signature"
_HEADER_PARAMETERS = ("Credential", "SignedHeaders", "Signature")

_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class SignedRequest:
    """
    An HTTP request as it arrived: ``path`` and ``query`` are the raw bytes of the request
    target before and after its ``?``; ``headers`` maps lower-cased names to values (the
    wire's bytes as UTF-8, which is how botocore sends them; a repeated header's values
    joined with ",").
    """

    method: str
    path: bytes
    query: bytes
    headers: Mapping[str, str]
    body: bytes

    @classmethod
    def from_wire(
        cls, method: bytes, target: bytes, headers: Iterable[tuple[bytes, Sequence[bytes]]], body: bytes
    ) -> SignedRequest:
        """From the request line's method and target and the raw headers (Twisted's ``getAllRawHeaders()``)."""
        path, _, query = target.partition(b"?")
        values: dict[str, list[str]] = {}
        for name, raw_values in headers:
            values.setdefault(name.decode("latin-1").lower(), []).extend(
                _trimmed(value.decode("utf-8", "surrogateescape")) for value in raw_values
            )
        joined = {name: ",".join(each) for name, each in values.items()}
        return cls(method.decode("latin-1"), path, query, joined, body)


@dataclass(frozen=True)
class _Authorization:
    """What a request claims about its signature, checked for form and date, not yet for the secret."""

    access_key: str
    date: str
    region: str
    timestamp: str
    signed_headers: str
    signature: bytes
    presigned: bool
    query: tuple[tuple[bytes, bytes], ...]  # the pairs the signature covers

    @property
    def scope(self) -> str:
        return "/".join((self.date, self.region, SERVICE, TERMINATOR))


def identify(request: SignedRequest, now: float) -> str:
    """
    The access key id of a well-formed SigV4 request dated within the allowed skew of
    ``now`` (or before its presigned expiry), without checking its signature: what the API
    accepts when it runs without applications (doc/configuration.md, ``[apps]``).
    """
    return _authorization(request, now).access_key


def verify(request: SignedRequest, secret_for: Callable[[str], bytes | None], now: float) -> str:
    """
    The access key id of the signer of ``request``, whose secret ``secret_for`` gives (None
    for a key it does not know); ``now`` is the server's time in seconds since the epoch.
    Raises SqsError with SQS's code for what is wrong.
    """
    authorization = _authorization(request, now)
    secret = secret_for(authorization.access_key)
    if secret is None:
        raise sqs_error("InvalidClientTokenId", "The security token included in the request is invalid.")
    key = _signing_key(secret, authorization.date, authorization.region)
    payload_hash = _payload_hash(request)
    for canonical_request in _canonical_requests(request, authorization, payload_hash):
        expected = _signature(key, authorization.timestamp, authorization.scope, canonical_request)
        if hmac.compare_digest(expected, authorization.signature):
            return authorization.access_key
    raise _mismatch(_MISMATCH)


def sign(request: SignedRequest, access_key: str, secret: bytes, now: float, region: str = DEFAULT_REGION) -> dict[str, str]:
    """
    The headers that sign ``request`` (whose headers must hold its ``host``) at ``now``, as
    botocore's SigV4Auth signs it: ``X-Amz-Date`` and ``Authorization``.
    """
    timestamp = _timestamp(now)
    date = timestamp[:8]
    scope = "/".join((date, region, SERVICE, TERMINATOR))
    headers = {**request.headers, "x-amz-date": timestamp}
    canonical_request = _canonical_request(
        SignedRequest(request.method, request.path, request.query, headers, request.body),
        _SIGNED_BY_SIGN, _canonical_query(_query_pairs(request.query)), sha256(request.body).hexdigest(),
    )
    signature = _signature(_signing_key(secret, date, region), timestamp, scope, canonical_request).decode()
    return {
        "X-Amz-Date": timestamp,
        "Authorization": f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={_SIGNED_BY_SIGN}, Signature={signature}",
    }


def _authorization(request: SignedRequest, now: float) -> _Authorization:
    pairs = _query_pairs(request.query)
    header = request.headers.get("authorization")
    presigned = any(name.decode("utf-8", "surrogateescape") in _PRESIGNED_MARKS for name, _ in pairs)
    if header is None and not presigned:
        raise sqs_error(
            "MissingAuthenticationToken",
            "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.",
        )
    if header is not None and presigned:
        raise _incomplete("Only one auth mechanism allowed: the Authorization header or the X-Amz-Signature query parameter.")
    if header is not None:
        credential, signed_headers, signature = _header_parameters(header)
        timestamp = _header_timestamp(request.headers)
        expires = None
        signed_pairs = pairs
    else:
        parameters = _presigned_parameters(pairs)
        if parameters["X-Amz-Algorithm"] != ALGORITHM:
            raise _incomplete(f"Unsupported X-Amz-Algorithm {parameters['X-Amz-Algorithm']!r}: only {ALGORITHM}.")
        credential, signed_headers = parameters["X-Amz-Credential"], parameters["X-Amz-SignedHeaders"]
        signature = parameters["X-Amz-Signature"].encode("utf-8", "surrogateescape")
        timestamp = _checked_timestamp(parameters["X-Amz-Date"])
        expires = _expires(parameters["X-Amz-Expires"])
        signed_pairs = [(name, value) for name, value in pairs if name != _SIGNATURE_PARAMETER]
    access_key, date, region = _credential(credential, timestamp)
    _check_signed_headers(signed_headers, request.headers)
    _check_clock(timestamp, expires, now)
    return _Authorization(
        access_key=access_key,
        date=date,
        region=region,
        timestamp=timestamp,
        signed_headers=signed_headers,
        signature=signature,
        presigned=expires is not None,
        query=tuple(signed_pairs),
    )


def _incomplete(message: str) -> SqsError:
    return sqs_error("IncompleteSignature", message)


def _mismatch(message: str) -> SqsError:
    return sqs_error("SignatureDoesNotMatch", message)


def _query_pairs(query: bytes) -> list[tuple[bytes, bytes]]:
    pairs = []
    for part in query.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            pairs.append((unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" "))))
    return pairs


def _header_parameters(header: str) -> tuple[str, str, bytes]:
    """Credential, SignedHeaders and Signature of ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``."""
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported Authorization type {algorithm!r}: only {ALGORITHM}.")
    parameters: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, value = part.strip().partition("=")
        if name not in _HEADER_PARAMETERS or not equals or name in parameters:
            raise _incomplete(f"Authorization header has a bad or repeated element {part.strip()!r}.")
        parameters[name] = value
    for name in _HEADER_PARAMETERS:
        if name not in parameters:
            raise _incomplete(f"Authorization header requires '{name}' parameter.")
    return parameters["Credential"], parameters["SignedHeaders"], parameters["Signature"].encode("utf-8", "surrogateescape")


def _presigned_parameters(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        text = name.decode("utf-8", "surrogateescape")
        if text in _PRESIGNED_PARAMETERS:
            values.setdefault(text, []).append(value.decode("utf-8", "surrogateescape"))
    if any(len(values.get(name, ())) != 1 for name in _PRESIGNED_PARAMETERS):
        raise _incomplete(
            "Query-string authentication requires exactly one each of the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature parameters."
        )
    return {name: each[0] for name, each in values.items()}


def _header_timestamp(headers: Mapping[str, str]) -> str:
    """The request's ISO 8601 basic timestamp: X-Amz-Date, or else the HTTP Date header (botocore signs with either)."""
    if "x-amz-date" in headers:
        return _checked_timestamp(headers["x-amz-date"])
    if "date" in headers:
        parsed = parsedate_tz(headers["date"])
        if parsed is None:
            raise _incomplete(f"Date header is not an HTTP date: {headers['date']!r}.")
        return _timestamp(mktime_tz(parsed))
    raise _incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")


def _checked_timestamp(value: str) -> str:
    stamp = value.strip()
    if _TIMESTAMP.fullmatch(stamp):
        try:
            time.strptime(stamp, _TIMESTAMP_FORMAT)
            return stamp
        except ValueError:  # a month 13, a 30 February
            pass
    raise _incomplete(f"X-Amz-Date must be an ISO 8601 basic date such as 20240131T235959Z, got {value!r}.")


def _expires(value: str) -> int:
    if not (value.isascii() and value.isdigit() and int(value) <= MAX_PRESIGNED_EXPIRES):
        raise _incomplete(f"X-Amz-Expires must be a number of seconds from 0 to {MAX_PRESIGNED_EXPIRES}, got {value!r}.")
    return int(value)


def _credential(credential: str, timestamp: str) -> tuple[str, str, str]:
    """The access key, date and region of ``KEY/DATE/REGION/sqs/aws4_request``; any region will do."""
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise _incomplete(
            f"Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got {credential!r}."
        )
    access_key, date, region, service, terminator = parts
    if service != SERVICE:
        raise _mismatch(f"Credential should be scoped to correct service: '{SERVICE}'.")
    if terminator != TERMINATOR:
        raise _mismatch(f"Credential should be scoped with a valid terminator: '{TERMINATOR}', not {terminator!r}.")
    if date != timestamp[:8]:
        raise _mismatch(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"{date!r} != {timestamp[:8]!r}, from {timestamp!r}."
        )
    return access_key, date, region


def _check_signed_headers(signed_headers: str, headers: Mapping[str, str]) -> None:
    names = signed_headers.split(";")
    # Host must be signed (as AWS requires), or a request signed for one server of a fleet
    # sharing its keys (doc/fleet.md) would be good at every other.
    if "host" not in names:
        raise _incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    missing = [name for name in names if name not in headers]
    if missing:
        raise _incomplete(f"The signed header {missing[0]!r} is not in the request.")


def _check_clock(timestamp: str, expires: int | None, now: float) -> None:
    """
    A request dated more than MAX_SKEW from ``now``, or a presigned URL past its expiry, is
    refused with 403 SignatureDoesNotMatch "Signature expired: ...": what SQS answers
    (aws/aws-sdk-php#642 quotes its reply). RequestExpired is the other code AWS documents
    for this, but SQS does not send it. botocore treats neither as a clock skew to correct
    or retry (neither is in botocore/data/_retry.json, the legacy retry mode, nor in
    botocore/retries/standard.py), so boto3 raises ClientError as with real SQS; the SDKs
    that do correct skew (the JavaScript SDK's CLOCK_SKEW_ERROR_CODES,
    packages/service-error-classification/src/constants.ts) list SignatureDoesNotMatch.
    """
    signed_at = calendar.timegm(time.strptime(timestamp, _TIMESTAMP_FORMAT))
    if signed_at - now > MAX_SKEW:
        raise _mismatch(
            f"Signature not yet current: {timestamp} is still later than {_timestamp(now + MAX_SKEW)} "
            f"({_timestamp(now)} + 15 min.)"
        )
    if expires is None and now - signed_at > MAX_SKEW:
        raise _mismatch(
            f"Signature expired: {timestamp} is now earlier than {_timestamp(now - MAX_SKEW)} ({_timestamp(now)} - 15 min.)"
        )
    if expires is not None and now - signed_at > expires:
        raise _mismatch(
            f"Signature expired: {timestamp} + X-Amz-Expires {expires} s is now earlier than {_timestamp(now)}."
        )


def _timestamp(seconds: float) -> str:
    return time.strftime(_TIMESTAMP_FORMAT, time.gmtime(seconds))


def _payload_hash(request: SignedRequest) -> str:
    """
    The payload line of the canonical request. A claimed ``x-amz-content-sha256`` must be
    the body's hash, or ``UNSIGNED-PAYLOAD`` (botocore's choice over HTTPS when payload
    signing is off), which leaves the body unauthenticated as the client asked.
    """
    body_hash = sha256(request.body).hexdigest()
    claimed = request.headers.get("x-amz-content-sha256")
    if claimed is None:
        return body_hash
    if claimed.strip() not in (body_hash, UNSIGNED_PAYLOAD):
        raise _mismatch("The provided 'x-amz-content-sha256' header does not match what was computed.")
    return claimed.strip()


def _canonical_requests(request: SignedRequest, authorization: _Authorization, payload_hash: str) -> Iterable[bytes]:
    """The canonical request, then for a header-signed request the one with its query as sent (curl before 8.x)."""
    queries = [_canonical_query(authorization.query)]
    if not authorization.presigned:
        queries.append(request.query)
    return [
        _canonical_request(request, authorization.signed_headers, query, payload_hash) for query in dict.fromkeys(queries)
    ]


def _canonical_request(request: SignedRequest, signed_headers: str, query: bytes, payload_hash: str) -> bytes:
    headers = "".join(
        f"{name}:{_trimmed(request.headers[name])}\n" for name in signed_headers.split(";")
    ).encode("utf-8", "surrogateescape")
    method = request.method.encode("utf-8", "surrogateescape")
    return b"\n".join((
        method, _canonical_path(request.path), query, headers, signed_headers.encode("utf-8", "surrogateescape"),
        payload_hash.encode(),
    ))


def _signature(key: bytes, timestamp: str, scope: str, canonical_request: bytes) -> bytes:
    """The hex signature, as bytes, of a canonical request under a signing key (_signing_key)."""
    string_to_sign = "\n".join((ALGORITHM, timestamp, scope, sha256(canonical_request).hexdigest()))
    return hmac.new(key, string_to_sign.encode(), sha256).hexdigest().encode()


def _canonical_path(path: bytes) -> bytes:
    """RFC 3986 §5.2.4's dot-segment removal and no empty segments (botocore's remove_dot_segments), encoded again."""
    segments: list[bytes] = []
    for segment in path.split(b"/"):
        if segment == b"..":
            if segments:
                segments.pop()
        elif segment and segment != b".":
            segments.append(segment)
    trailing = b"/" if path.endswith(b"/") and segments else b""
    return quote(b"/" + b"/".join(segments) + trailing, safe="/~").encode()


def _canonical_query(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    encoded = sorted((quote(name, safe=_UNRESERVED), quote(value, safe=_UNRESERVED)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded).encode()


def _trimmed(value: str) -> str:
    return " ".join(value.split())


def _signing_key(secret: bytes, date: str, region: str) -> bytes:
    key = b"AWS4" + secret
    for part in (date, region, SERVICE, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8", "surrogateescape"), sha256).digest()
    return key
