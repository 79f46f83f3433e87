"""Applications, their grants on queue-name patterns, and the open mode's loopback rule."""

import calendar
import dataclasses
import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kestrel.sqs.apps import App, Applications, Grant, check, open_mode_allowed, visible
from kestrel.sqs.errors import SqsError
from kestrel.sqs.sigv4 import SignedRequest

BILLING = App(
    "billing", "AKIDBILLING01", b"billing-secret", read=("billing-*",), write=("billing-*", "audit"), admin=("billing-*",)
)
REPORTS = App("reports", "AKIDREPORTS01", b"reports-secret", read=("billing-*", "reports"), write=("reports",))
SIGNED_AT = calendar.timegm((2024, 1, 31, 12, 0, 0))
QUEUE_URL = "http://localhost:9324/000000000000/jobs"


def signed(key: str, secret: str) -> SignedRequest:
    """A request signed by botocore now; the tests verify it at its X-Amz-Date."""
    request = AWSRequest("POST", "http://localhost:9324/", data=b"Action=ListQueues")
    SigV4Auth(Credentials(key, secret), "sqs", "us-east-1").add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    return SignedRequest("POST", b"/", b"", {**headers, "host": "localhost:9324"}, request.body)


def signed_time(request: SignedRequest) -> int:
    return calendar.timegm(time.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ"))


@pytest.mark.parametrize(
    ("kind", "queue", "granted"),
    [
        (Grant.READ, "billing-invoices", True),
        (Grant.READ, "billing-", True),
        (Grant.READ, "billing", False),
        (Grant.READ, "Billing-invoices", False),  # patterns match case-sensitively, like queue names
        (Grant.READ, "audit", False),
        (Grant.WRITE, "audit", True),
        (Grant.WRITE, "audit-2", False),
        (Grant.WRITE, "billing-x", True),
        (Grant.ADMIN, "billing-x", True),
        (Grant.ADMIN, "audit", False),
    ],
)
def test_grants_match_their_patterns(kind, queue, granted):
    assert BILLING.grants(kind, queue) is granted


def test_an_app_without_patterns_has_no_grant():
    nobody = App("nobody", "AKIDNOBODY", b"s")
    assert not any(nobody.grants(kind, "anything") for kind in Grant)
    assert not visible(nobody, "anything")


def test_check_raises_access_denied_naming_the_resource():
    check(BILLING, Grant.WRITE, "audit", QUEUE_URL)
    with pytest.raises(SqsError) as caught:
        check(REPORTS, Grant.ADMIN, "reports", QUEUE_URL)
    error = caught.value
    assert (error.code, error.status, error.sender) == ("AccessDenied", 403, True)
    assert error.message == f"Access to the resource {QUEUE_URL} is denied."


@pytest.mark.parametrize(
    ("app", "queue", "shown"),
    [
        (BILLING, "billing-a", True),
        (BILLING, "audit", True),  # write only
        (BILLING, "reports", False),
        (REPORTS, "billing-a", True),  # read only
        (REPORTS, "audit", False),
    ],
)
def test_list_queues_shows_queues_with_any_grant(app, queue, shown):
    assert visible(app, queue) is shown


def test_repr_hides_the_secret():
    assert "billing-secret" not in repr(BILLING)
    assert "billing-secret" not in str(BILLING)
    assert "AKIDBILLING01" in repr(BILLING)


def test_applications_by_access_key():
    applications = Applications({"billing": BILLING, "reports": REPORTS})
    assert not applications.open
    assert applications.secret_for("AKIDREPORTS01") == b"reports-secret"
    assert applications.secret_for("AKIDNOBODY") is None
    assert applications.app_for("AKIDBILLING01") is BILLING
    assert applications.app_for("AKIDNOBODY") is None


def test_authenticate_finds_the_signer():
    applications = Applications({"billing": BILLING, "reports": REPORTS})
    request = signed("AKIDREPORTS01", "reports-secret")
    assert applications.authenticate(request, signed_time(request)) is REPORTS
    with pytest.raises(SqsError, match="SignatureDoesNotMatch"):
        wrong = signed("AKIDREPORTS01", "billing-secret")
        applications.authenticate(wrong, signed_time(wrong))
    with pytest.raises(SqsError, match="InvalidClientTokenId"):
        unknown = signed("AKIDNOBODY", "x")
        applications.authenticate(unknown, signed_time(unknown))


def test_the_open_mode_takes_any_signature_and_grants_everything():
    applications = Applications({})
    assert applications.open
    request = signed("whoever", "whatever")
    app = applications.authenticate(request, signed_time(request))
    assert app.access_key == "whoever"
    assert all(app.grants(kind, "any-queue") for kind in Grant)
    with pytest.raises(SqsError, match="MissingAuthenticationToken"):
        applications.authenticate(dataclasses.replace(request, headers={"host": "localhost:9324"}), SIGNED_AT)


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp:9324:interface=127.0.0.1",
        "tcp:9324:interface=127.1.2.3",
        "tcp:9324:127.0.0.1",
        "tcp:9324:interface=localhost",
        r"tcp6:9324:interface=\:\:1",
        r"tcp6:9324:interface=\:\:ffff\:127.0.0.1",
        "unix:/run/kestrel-sqs.sock",
    ],
)
def test_open_mode_is_allowed_on_loopback(endpoint):
    assert open_mode_allowed(endpoint)


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp:9324",  # every interface
        "tcp:9324:interface=0.0.0.0",
        "tcp:9324:interface=10.0.0.7",
        "tcp:9324:interface=queue.example.com",
        "tcp6:9324",
        r"tcp6:9324:interface=\:\:",
        "systemd:domain=INET:index=0",  # whatever systemd bound: it cannot be told here
        "",
    ],
)
def test_open_mode_is_refused_elsewhere(endpoint):
    assert not open_mode_allowed(endpoint)


def test_open_mode_on_tls_follows_its_interface(tmp_path):
    pytest.importorskip("OpenSSL", reason="ssl: endpoints need pyOpenSSL (Twisted[tls])")
    from OpenSSL.crypto import FILETYPE_PEM
    from twisted.internet.ssl import KeyPair

    key = KeyPair.generate(size=2048)
    certificate = key.selfSignedCert(1, CN="localhost")
    pem = tmp_path / "server.pem"
    # Both in PEM, as the endpoint reads them (dump's default is DER).
    pem.write_bytes(key.dump(FILETYPE_PEM) + certificate.dump(FILETYPE_PEM))
    assert open_mode_allowed(f"ssl:9324:privateKey={pem}:interface=127.0.0.1")
    assert not open_mode_allowed(f"ssl:9324:privateKey={pem}")
