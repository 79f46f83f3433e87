"""
Real SQS clients against a real server's SQS API: boto3 over the JSON protocol, boto3 forced to
the query protocol, and the AWS CLI, each through the full round (sqs_round.py), the
refusals of keys, secrets and grants, and a clock skewed past SigV4's 15 minutes.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil

import botocore.auth
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kestrel.test.acceptance.sqs import (
    APPS, READER_KEY, READER_SECRET, AwsCli, AwsCliInProcess, boto3_client, endpoint, sqs_server,
)
from kestrel.test.acceptance.sqs_round import code_of, full_round, refusals

WIRES = ["json", "query"]


@pytest.mark.parametrize("wire", WIRES)
def test_boto3_goes_the_full_round(make_server, wire):
    url = endpoint(sqs_server(make_server))
    full_round(boto3_client(url, wire), url, wire)
    refusals(
        boto3_client(url, wire),
        stranger=boto3_client(url, wire, key="AKIDNOBODY"),
        wrong_secret=boto3_client(url, wire, secret="not-the-secret"),
        reader=boto3_client(url, wire, READER_KEY, READER_SECRET),
        suffix=wire,
    )


@pytest.mark.parametrize("wire", WIRES)
def test_boto3_signing_with_a_clock_skewed_past_15_minutes_is_refused(make_server, monkeypatch, wire):
    client = boto3_client(endpoint(sqs_server(make_server)), wire)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for skew, refused in ((-20, True), (20, True), (-10, False), (10, False)):
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now + datetime.timedelta(minutes=skew))
        if refused:
            assert code_of(client.list_queues) == "SignatureDoesNotMatch"
        else:
            client.list_queues()


def test_the_aws_cli_goes_the_full_round(make_server):
    url = endpoint(sqs_server(make_server))
    full_round(AwsCliInProcess(url), url, "cli")
    refusals(
        AwsCliInProcess(url),
        stranger=AwsCliInProcess(url, key="AKIDNOBODY"),
        wrong_secret=AwsCliInProcess(url, secret="not-the-secret"),
        reader=AwsCliInProcess(url, READER_KEY, READER_SECRET),
        suffix="cli",
    )


def test_the_aws_command_sends_and_receives(make_server):
    """The `aws` command itself, in its own process (the round above runs its code in this one)."""
    url = endpoint(sqs_server(make_server))
    cli = AwsCli(url)
    queue_url = cli.create_queue(QueueName="jobs-command")["QueueUrl"]
    cli.send_message(QueueUrl=queue_url, MessageBody="by command")
    (message,) = cli.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert message["Body"] == "by command"
    assert code_of(AwsCli(url, secret="not-the-secret").list_queues) == "SignatureDoesNotMatch"


def test_the_aws_cli_under_a_clock_skewed_past_15_minutes_is_refused(make_server):
    faketime = shutil.which("faketime")
    assert faketime, "the AWS CLI's clock is skewed by Debian's faketime, which .ci/run installs"
    url = endpoint(sqs_server(make_server))
    for offset, refused in (("-20m", True), ("+20m", True), ("+10m", False)):
        cli = AwsCli(url, prefix=(faketime, "-f", offset))
        if refused:
            assert code_of(cli.list_queues) == "SignatureDoesNotMatch"
        else:
            cli.list_queues()


def self_signed(directory) -> None:
    """key.pem and cert.pem in ``directory``: a certificate of 127.0.0.1 signed by its own key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def test_boto3_over_tls_gets_https_queue_urls(make_server, tmp_path):
    self_signed(tmp_path)
    server = make_server(server='sqs_listen = "ssl:0:interface=127.0.0.1:privateKey=key.pem:certKey=cert.pem"', queues=APPS)
    url = f"https://127.0.0.1:{server.sqs_port}"
    sqs = boto3_client(url, verify=str(tmp_path / "cert.pem"))
    queue_url = sqs.create_queue(QueueName="secure")["QueueUrl"]
    assert queue_url == f"{url}/000000000000/secure"
    sqs.send_message(QueueUrl=queue_url, MessageBody="over TLS")
    assert [message["Body"] for message in sqs.receive_message(QueueUrl=queue_url)["Messages"]] == ["over TLS"]
