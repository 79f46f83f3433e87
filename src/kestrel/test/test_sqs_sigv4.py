"""
SigV4 verification against the real signers: botocore's (what boto3 and the AWS CLI send)
and curl's ``--aws-sigv4``. botocore signs at SIGNED_AT (its clock is pinned); every
verify is given its own time.
"""

import calendar
import dataclasses
import datetime
import shutil
import socket
import subprocess
import threading
import time
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from kestrel.sqs.errors import SqsError
from kestrel.sqs.sigv4 import MAX_SKEW, SignedRequest, identify, sign as kestrel_sign, verify

KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
OTHER_KEY = "AKIDOTHER"
OTHER_SECRET = "another-secret-of-another-app"
SECRETS = {KEY: SECRET.encode(), OTHER_KEY: OTHER_SECRET.encode()}
ENDPOINT = "http://localhost:9324"
QUEUE_URL = f"{ENDPOINT}/000000000000/jobs"
SIGNED_AT = calendar.timegm((2024, 1, 31, 12, 0, 0))


@pytest.fixture(autouse=True)
def botocore_signs_at_a_fixed_time(monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime.datetime(2024, 1, 31, 12, 0, 0))


def arrived(request: AWSRequest) -> SignedRequest:
    """What the server gets from botocore's request: the URL's path and query as sent, Host from its netloc."""
    prepared = request.prepare()
    url = urlsplit(prepared.url)
    target = url.path.encode() + (b"?" + url.query.encode() if url.query else b"")
    headers = [(b"Host", [url.netloc.encode()])]
    headers += [(name.encode(), [value if isinstance(value, bytes) else value.encode()]) for name, value in prepared.headers.items()]
    body = prepared.body or b""
    return SignedRequest.from_wire(prepared.method.encode(), target, headers, body.encode() if isinstance(body, str) else body)


def json_request() -> AWSRequest:
    """boto3's JSON protocol: a POST to / naming its action in X-Amz-Target."""
    return AWSRequest(
        "POST",
        f"{ENDPOINT}/",
        data=b'{"QueueUrl": "%s", "MessageBody": "hello"}' % QUEUE_URL.encode(),
        headers={"X-Amz-Target": "AmazonSQS.SendMessage", "Content-Type": "application/x-amz-json-1.0"},
    )


def query_request() -> AWSRequest:
    """The query protocol: a form POST with Action= in the body."""
    return AWSRequest(
        "POST",
        f"{ENDPOINT}/",
        data=b"Action=SendMessage&Version=2012-11-05&QueueUrl=http%3A%2F%2Flocalhost%3A9324%2F000000000000%2Fjobs&MessageBody=a%2Bb%20c",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )


def sign(request: AWSRequest, key=KEY, secret=SECRET, service="sqs", region="us-east-1", token=None) -> SignedRequest:
    SigV4Auth(Credentials(key, secret, token), service, region).add_auth(request)
    return arrived(request)


def presign(request: AWSRequest, expires=60, key=KEY, secret=SECRET, service="sqs") -> SignedRequest:
    SigV4QueryAuth(Credentials(key, secret), service, "us-east-1", expires=expires).add_auth(request)
    return arrived(request)


def presigned_get(params=(("Action", "ReceiveMessage"),), path="/000000000000/jobs", expires=60) -> SignedRequest:
    return presign(AWSRequest("GET", f"{ENDPOINT}{path}", params=dict(params)), expires=expires)


def refusal(request: SignedRequest, now: float = SIGNED_AT, secret_for=SECRETS.get) -> SqsError:
    with pytest.raises(SqsError) as caught:
        verify(request, secret_for, now)
    error = caught.value
    shown = f"{error} {error!r} {error.args}"
    assert SECRET not in shown and OTHER_SECRET not in shown
    return error


def with_header(request: SignedRequest, name: str, value: str) -> SignedRequest:
    return dataclasses.replace(request, headers={**request.headers, name: value})


@pytest.mark.parametrize("request_maker", [json_request, query_request], ids=["json", "query"])
def test_botocore_signed_posts_verify(request_maker):
    assert verify(sign(request_maker()), SECRETS.get, SIGNED_AT) == KEY


def test_the_other_app_is_told_apart_by_its_key():
    assert verify(sign(json_request(), key=OTHER_KEY, secret=OTHER_SECRET), SECRETS.get, SIGNED_AT) == OTHER_KEY


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3", "elasticmq", "x"])
def test_any_region_will_do(region):
    assert verify(sign(json_request(), region=region), SECRETS.get, SIGNED_AT) == KEY


def test_a_request_signed_with_the_http_date_header_verifies():
    """botocore signs the Date header, not X-Amz-Date, when the request carries one."""
    request = json_request()
    request.headers["Date"] = "placeholder"
    signed = sign(request)
    assert "x-amz-date" not in signed.headers and signed.headers["date"] == "Wed, 31 Jan 2024 12:00:00 -0000"
    assert verify(signed, SECRETS.get, SIGNED_AT) == KEY


def test_a_session_token_is_ignored():
    signed = sign(json_request(), token="FQoGZXIvYXdzEXAMPLE")
    assert "x-amz-security-token" in signed.headers
    assert verify(signed, SECRETS.get, SIGNED_AT) == KEY


def test_a_signed_payload_hash_header_must_be_the_body_hash():
    request = json_request()
    request.headers["X-Amz-Content-SHA256"] = botocore.auth.SigV4Auth(None, "sqs", "x").payload(request)
    signed = sign(request)
    assert verify(signed, SECRETS.get, SIGNED_AT) == KEY
    error = refusal(dataclasses.replace(signed, body=b'{"QueueUrl": "elsewhere"}'))
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert "x-amz-content-sha256" in error.message


def test_an_unsigned_payload_leaves_the_body_unauthenticated_as_the_client_asked():
    """botocore sends UNSIGNED-PAYLOAD over HTTPS when payload signing is off."""
    request = json_request()
    request.url = request.url.replace("http:", "https:")
    request.context["payload_signing_enabled"] = False
    signed = sign(request)
    assert signed.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert verify(dataclasses.replace(signed, body=b"anything"), SECRETS.get, SIGNED_AT) == KEY


def test_an_unsigned_header_may_change():
    assert verify(with_header(sign(json_request()), "user-agent", "something else"), SECRETS.get, SIGNED_AT) == KEY


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda r: dataclasses.replace(r, body=r.body.replace(b"hello", b"hellO")), id="body"),
        pytest.param(lambda r: dataclasses.replace(r, body=r.body + b" "), id="body-appended"),
        pytest.param(lambda r: with_header(r, "x-amz-target", "AmazonSQS.DeleteQueue"), id="signed-header"),
        pytest.param(lambda r: with_header(r, "host", "elsewhere:9324"), id="host"),
        pytest.param(lambda r: dataclasses.replace(r, method="PUT"), id="method"),
        pytest.param(lambda r: dataclasses.replace(r, path=b"/000000000000/jobs"), id="path"),
        pytest.param(lambda r: dataclasses.replace(r, query=b"Action=DeleteQueue"), id="query"),
        pytest.param(lambda r: with_header(r, "x-amz-date", "20240131T120001Z"), id="date"),
        pytest.param(
            lambda r: with_header(r, "authorization", r.headers["authorization"].replace(KEY, OTHER_KEY)), id="key"
        ),
        pytest.param(
            lambda r: with_header(r, "authorization", r.headers["authorization"].replace("us-east-1", "us-west-2")),
            id="region",
        ),
        pytest.param(
            lambda r: with_header(r, "authorization", r.headers["authorization"][:-1] + "0"), id="signature"
        ),
    ],
)
def test_tampering_is_refused(tamper):
    signed = sign(json_request())
    assert signed.headers["authorization"][-1] != "0"  # so that the "signature" case changes it
    error = refusal(tamper(signed))
    assert (error.code, error.status, error.message) == (
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    )


def test_the_wrong_secret_is_refused():
    error = refusal(sign(json_request()), secret_for={KEY: OTHER_SECRET.encode()}.get)
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


def test_an_unknown_key_is_refused():
    error = refusal(sign(json_request(), key="AKIDNOBODY"))
    assert (error.code, error.status, error.message) == (
        "InvalidClientTokenId", 403, "The security token included in the request is invalid."
    )


def test_another_service_is_refused():
    error = refusal(sign(json_request(), service="sns"))
    assert (error.code, error.status, error.message) == (
        "SignatureDoesNotMatch", 403, "Credential should be scoped to correct service: 'sqs'."
    )


def test_a_date_from_another_day_than_the_scope_is_refused():
    error = refusal(with_header(sign(json_request()), "x-amz-date", "20240201T000000Z"))
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.message.startswith("Date in Credential scope does not match")


@pytest.mark.parametrize("skew", [-MAX_SKEW, -1, 0, 1, MAX_SKEW])
def test_a_clock_skew_up_to_15_minutes_is_accepted(skew):
    assert verify(sign(json_request()), SECRETS.get, SIGNED_AT + skew) == KEY


def test_a_request_older_than_15_minutes_is_refused():
    error = refusal(sign(json_request()), now=SIGNED_AT + MAX_SKEW + 1)
    assert (error.code, error.status, error.message) == (
        "SignatureDoesNotMatch",
        403,
        "Signature expired: 20240131T120000Z is now earlier than 20240131T120001Z (20240131T121501Z - 15 min.)",
    )


def test_a_request_from_more_than_15_minutes_ahead_is_refused():
    error = refusal(sign(json_request()), now=SIGNED_AT - MAX_SKEW - 1)
    assert (error.code, error.status, error.message) == (
        "SignatureDoesNotMatch",
        403,
        "Signature not yet current: 20240131T120000Z is still later than 20240131T115959Z (20240131T114459Z + 15 min.)",
    )


def test_a_presigned_get_verifies():
    assert verify(presigned_get(), SECRETS.get, SIGNED_AT) == KEY


@pytest.mark.parametrize("age", [0, 59, 60])
def test_a_presigned_url_is_good_until_it_expires(age):
    assert verify(presigned_get(expires=60), SECRETS.get, SIGNED_AT + age) == KEY


def test_a_presigned_url_may_outlive_the_15_minutes():
    assert verify(presigned_get(expires=3600), SECRETS.get, SIGNED_AT + 3600) == KEY


def test_an_expired_presigned_url_is_refused():
    error = refusal(presigned_get(expires=60), now=SIGNED_AT + 61)
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.message.startswith("Signature expired: 20240131T120000Z + X-Amz-Expires 60 s")


def test_a_presigned_url_dated_ahead_is_refused():
    error = refusal(presigned_get(expires=3600), now=SIGNED_AT - MAX_SKEW - 1)
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.message.startswith("Signature not yet current")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Action=ReceiveMessage", b"Action=DeleteQueue"),
        (b"X-Amz-Expires=60", b"X-Amz-Expires=600"),
        (b"X-Amz-Date=20240131T120000Z", b"X-Amz-Date=20240131T120001Z"),
        (b"X-Amz-SignedHeaders=host", b"X-Amz-SignedHeaders=host%3Bx-extra"),
    ],
)
def test_a_tampered_presigned_url_is_refused(old, new):
    request = presigned_get()
    assert old in request.query
    tampered = dataclasses.replace(request, query=request.query.replace(old, new))
    if b"x-extra" in new:
        tampered = with_header(tampered, "x-extra", "1")
    error = refusal(tampered)
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


# Reserved, percent, plus, space, unicode and empty values: each must be decoded and encoded again
# exactly as botocore encodes it.
AWKWARD_VALUES = ["a b", "a+b", "a/b", "a&b=c", "100%", "%41", "~*'()!$,;:@", "é ü", "日本語", "\u2028", ""]


@pytest.mark.parametrize("value", AWKWARD_VALUES)
def test_awkward_query_values_verify_presigned(value):
    request = presigned_get(params=(("Action", "SendMessage"), ("MessageBody", value), (value or "empty", "x")))
    assert verify(request, SECRETS.get, SIGNED_AT) == KEY


@pytest.mark.parametrize("value", AWKWARD_VALUES)
def test_awkward_query_values_verify_header_signed(value):
    request = sign(AWSRequest("GET", QUEUE_URL, params={"Action": "SendMessage", "MessageBody": value, "Z": "1", "a": "2"}))
    assert verify(request, SECRETS.get, SIGNED_AT) == KEY


@pytest.mark.parametrize(
    "path",
    [
        "/000000000000/jobs",
        "/000000000000/q%20x",
        "/000000000000/%7Eq~",
        "/000000000000/%C3%A9t%C3%A9",
        "/a/./b/../c//d/",
        "/000000000000/a%2Fb",
        "",
    ],
)
def test_awkward_paths_verify(path):
    assert verify(sign(AWSRequest("GET", f"{ENDPOINT}{path}", params={"Action": "GetQueueAttributes"})), SECRETS.get, SIGNED_AT) == KEY
    assert verify(presigned_get(path=path), SECRETS.get, SIGNED_AT) == KEY


def test_a_plus_in_the_query_is_a_space():
    """botocore sends a space in a query value as "+" and signs it as "%20"; "%2B" is a plus."""
    request = sign(AWSRequest("GET", QUEUE_URL, params={"Action": "SendMessage", "MessageBody": "a b"}))
    assert b"MessageBody=a+b" in request.query
    assert verify(dataclasses.replace(request, query=request.query.replace(b"a+b", b"a%20b")), SECRETS.get, SIGNED_AT) == KEY
    error = refusal(dataclasses.replace(request, query=request.query.replace(b"a+b", b"a%2Bb")))
    assert error.code == "SignatureDoesNotMatch"


def test_signed_header_values_are_trimmed_as_botocore_trims_them():
    request = json_request()
    request.headers["X-Custom"] = "a b"
    signed = sign(request)
    assert verify(with_header(signed, "x-custom", "  a \t  b "), SECRETS.get, SIGNED_AT) == KEY
    assert refusal(with_header(signed, "x-custom", "ab")).code == "SignatureDoesNotMatch"


def test_the_path_is_encoded_twice_as_botocore_signs_it():
    """A path signed as /q%20x must not verify as /q%2520x, nor the reverse."""
    request = sign(AWSRequest("GET", f"{ENDPOINT}/000000000000/q%20x"))
    error = refusal(dataclasses.replace(request, path=b"/000000000000/q%2520x"))
    assert error.code == "SignatureDoesNotMatch"


def test_no_signature_at_all():
    request = SignedRequest("POST", b"/", b"", {"host": "localhost:9324"}, b"Action=ListQueues")
    error = refusal(request)
    assert (error.code, error.status, error.message) == (
        "MissingAuthenticationToken",
        403,
        "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.",
    )


def authorization(value: str) -> SignedRequest:
    return with_header(sign(json_request()), "authorization", value)


@pytest.mark.parametrize(
    ("request_maker", "message"),
    [
        (lambda: authorization("AWS AKIDEXAMPLE:c2lnbmF0dXJl"), "Unsupported Authorization type 'AWS': only AWS4-HMAC-SHA256."),
        (
            lambda: authorization("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240131/us-east-1/sqs/aws4_request, Signature=00"),
            "Authorization header requires 'SignedHeaders' parameter.",
        ),
        (
            lambda: authorization("AWS4-HMAC-SHA256 Credential=a, Credential=b, SignedHeaders=host, Signature=00"),
            "Authorization header has a bad or repeated element 'Credential=b'.",
        ),
        (
            lambda: authorization("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240131/sqs/aws4_request, SignedHeaders=host, Signature=00"),
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            "got 'AKIDEXAMPLE/20240131/sqs/aws4_request'.",
        ),
        (
            lambda: authorization("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240131/us-east-1/sqs/aws4_request, SignedHeaders=x-amz-date, Signature=00"),
            "'Host' must be a 'SignedHeader' in the AWS Authorization.",
        ),
        (
            lambda: authorization("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240131/us-east-1/sqs/aws4_request, SignedHeaders=host;x-gone, Signature=00"),
            "The signed header 'x-gone' is not in the request.",
        ),
        (
            lambda: dataclasses.replace(
                sign(json_request()), headers={k: v for k, v in sign(json_request()).headers.items() if k != "x-amz-date"}
            ),
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ),
        (
            lambda: with_header(sign(json_request()), "x-amz-date", "20241331T120000Z"),
            "X-Amz-Date must be an ISO 8601 basic date such as 20240131T235959Z, got '20241331T120000Z'.",
        ),
        (
            lambda: dataclasses.replace(presigned_get(), headers={**presigned_get().headers, "authorization": "AWS4-HMAC-SHA256 x"}),
            "Only one auth mechanism allowed: the Authorization header or the X-Amz-Signature query parameter.",
        ),
        (
            lambda: dataclasses.replace(presigned_get(), query=presigned_get().query.split(b"&X-Amz-Signature=")[0]),
            "Query-string authentication requires exactly one each of the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature parameters.",
        ),
        (
            lambda: dataclasses.replace(presigned_get(), query=presigned_get().query.replace(b"X-Amz-Expires=60", b"X-Amz-Expires=604801")),
            "X-Amz-Expires must be a number of seconds from 0 to 604800, got '604801'.",
        ),
        (
            lambda: dataclasses.replace(presigned_get(), query=presigned_get().query.replace(b"AWS4-HMAC-SHA256", b"AWS4-ECDSA-P256-SHA256")),
            "Unsupported X-Amz-Algorithm 'AWS4-ECDSA-P256-SHA256': only AWS4-HMAC-SHA256.",
        ),
    ],
)
def test_malformed_signatures_are_incomplete(request_maker, message):
    error = refusal(request_maker())
    assert (error.code, error.status, error.message) == ("IncompleteSignature", 400, message)


def test_identify_checks_the_form_and_the_clock_but_not_the_secret():
    """The open mode: no applications, so no secret to check against."""
    assert identify(sign(json_request(), key="ANYONE", secret="anything"), SIGNED_AT) == "ANYONE"
    with pytest.raises(SqsError, match="Signature expired"):
        identify(sign(json_request()), SIGNED_AT + MAX_SKEW + 1)
    with pytest.raises(SqsError, match="MissingAuthenticationToken"):
        identify(SignedRequest("GET", b"/", b"Action=ListQueues", {"host": "localhost"}, b""), SIGNED_AT)


def test_from_wire_joins_repeated_headers_and_trims_values():
    request = SignedRequest.from_wire(
        b"POST",
        b"/000000000000/jobs?Action=X&b=2",
        [(b"Host", [b"localhost:9324"]), (b"X-Custom", [b"  a   b ", b"c"]), (b"x-custom", [b"d"]), (b"X-Utf8", ["é".encode()])],
        b"body",
    )
    assert request == SignedRequest(
        "POST",
        b"/000000000000/jobs",
        b"Action=X&b=2",
        {"host": "localhost:9324", "x-custom": "a b,c,d", "x-utf8": "é"},
        b"body",
    )


# --- real clients on the wire -------------------------------------------------------------------

CANNED_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"


def _serve_one(listener: socket.socket, received: list[bytes]) -> None:
    """Read one request, headers and Content-Length body, answer it with CANNED_REPLY."""
    connection, _ = listener.accept()
    with connection:
        connection.settimeout(30)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _content_length(data):
            chunk = connection.recv(65536)
            if not chunk:
                break
            data += chunk
        received.append(data)
        connection.sendall(CANNED_REPLY)


def _content_length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def captured(send) -> SignedRequest:
    """The request that ``send(base_url)`` makes, as it arrives at a loopback server."""
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)
        server = threading.Thread(target=_serve_one, args=(listener, received))
        server.start()
        try:
            send(f"http://127.0.0.1:{listener.getsockname()[1]}")
        finally:
            server.join(30)
    head, _, body = received[0].partition(b"\r\n\r\n")
    request_line, *header_lines = head.split(b"\r\n")
    method, target, _version = request_line.split(b" ")
    headers: dict[bytes, list[bytes]] = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers.setdefault(name.lower(), []).append(value.strip())
    return SignedRequest.from_wire(method, target, headers.items(), body)


def test_a_real_boto3_client_verifies():
    def send(url):
        client = boto3.client(
            "sqs",
            endpoint_url=url,
            region_name="eu-central-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            config=Config(retries={"total_max_attempts": 1}),
        )
        client.list_queues(QueueNamePrefix="jobs é/+")

    request = captured(send)
    assert request.headers["x-amz-target"] == "AmazonSQS.ListQueues"
    assert verify(request, SECRETS.get, SIGNED_AT) == KEY
    assert refusal(dataclasses.replace(request, body=request.body.replace(b"jobs", b"jabs"))).code == "SignatureDoesNotMatch"


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(*arguments: str):
    def send(url):
        subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "--aws-sigv4", "aws:amz:us-east-1:sqs", "--user", f"{KEY}:{SECRET}",
             *[argument.replace("URL", url) for argument in arguments]],
            check=True,
            timeout=30,
        )

    return captured(send)


@needs_curl
def test_curl_form_post_verifies():
    request = curl("-H", "Content-Type: application/x-www-form-urlencoded", "-d", "Action=ListQueues&QueueNamePrefix=a%2Bb", "URL/")
    assert verify(request, SECRETS.get, time.time()) == KEY
    assert refusal(dataclasses.replace(request, body=b"Action=ListQueues"), now=time.time()).code == "SignatureDoesNotMatch"


@needs_curl
def test_curl_get_with_a_query_it_may_not_sort_verifies():
    """curl before 8.x signs the query as it sends it, unsorted; later ones canonicalise it."""
    request = curl("URL/000000000000/jobs?Version=2012-11-05&Action=ReceiveMessage&MaxNumberOfMessages=10&x=%7e%2f")
    assert verify(request, SECRETS.get, time.time()) == KEY
    tampered = dataclasses.replace(request, query=request.query.replace(b"=10", b"=1"))
    assert refusal(tampered, now=time.time()).code == "SignatureDoesNotMatch"


# sign: the signer of txkestrel's own clients


@pytest.mark.parametrize("target", ["/history/jobs?since=0&limit=10", "/history/orders.fifo?since=2024-01-31T11%3A00%3A00Z&limit=5"])
def test_sign_gives_the_headers_botocore_gives(target):
    theirs = AWSRequest("GET", f"{ENDPOINT}{target}")
    SigV4Auth(Credentials(KEY, SECRET), "sqs", "us-east-1").add_auth(theirs)
    path, _, query = target.encode().partition(b"?")
    ours = kestrel_sign(SignedRequest("GET", path, query, {"host": "localhost:9324"}, b""), KEY, SECRET.encode(), SIGNED_AT)
    assert ours == {"X-Amz-Date": theirs.headers["X-Amz-Date"], "Authorization": theirs.headers["Authorization"]}


def test_what_sign_signs_verifies_and_nothing_else_does():
    unsigned = SignedRequest("GET", b"/history/jobs", b"since=0", {"host": "localhost:9324"}, b"")
    headers = {**unsigned.headers, **{name.lower(): value for name, value in kestrel_sign(unsigned, KEY, SECRET.encode(), SIGNED_AT).items()}}
    signed = dataclasses.replace(unsigned, headers=headers)
    assert verify(signed, SECRETS.get, SIGNED_AT + 60) == KEY
    assert refusal(dataclasses.replace(signed, query=b"since=1")).code == "SignatureDoesNotMatch"
