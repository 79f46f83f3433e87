"""
What the SQS API's acceptance tests share: a real server with the API on and applications
configured, and its real clients (boto3 over either wire, the AWS CLI) behind one interface,
boto3's: a method per action, keyword parameters, a dict back, ClientError for SQS's errors.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import botocore.session
from awscli.clidriver import CLIDriver, create_clidriver
from botocore.config import Config
from botocore.exceptions import ClientError

from kestrel.load.process import KestrelProcess
from kestrel.test.sqs_botocore import QUERY_MODEL

SQS_LISTEN = 'sqs_listen = "tcp:0:interface=127.0.0.1"'
REGION = "us-east-1"
ACCOUNT = "000000000000"
# `everyone` may do anything; `reader` may only read the queues named jobs*.
APPS = """
[apps.everyone]
access_key = "AKIDEVERYONE"
secret = "everyone-secret"
read = ["*"]
write = ["*"]
admin = ["*"]

[apps.reader]
access_key = "AKIDREADER"
secret = "reader-secret"
read = ["jobs*"]
"""
KEY, SECRET = "AKIDEVERYONE", "everyone-secret"
READER_KEY, READER_SECRET = "AKIDREADER", "reader-secret"
AWS = str(Path(sys.executable).with_name("aws"))
# "An error occurred (AWS.SimpleQueueService.NonExistentQueue) when calling the GetQueueUrl operation: ..."
CLI_ERROR = re.compile(r"An error occurred \(([^)]+)\) when calling the (\w+) operation(?: \(.*?\))?: (.*)", re.S)


def sqs_server(make_server: Callable[..., KestrelProcess], queues: str = "") -> KestrelProcess:
    """A server with the SQS API on a loopback port, the applications above, and ``queues`` tables."""
    return make_server(server=SQS_LISTEN, queues=APPS + queues)


def endpoint(server: KestrelProcess) -> str:
    return f"http://127.0.0.1:{server.sqs_port}"


def boto3_client(url: str, wire: str = "json", key: str = KEY, secret: str = SECRET, verify: str | None = None) -> Any:
    """
    A boto3 SQS client; ``wire`` "query" loads SQS's query-era model (sqs_botocore.py) ahead of
    botocore's own, which is how an SDK of that time spoke. No retries: each call is one request.
    ``verify`` is the certificate that an https server's must be.
    """
    core = botocore.session.get_session()
    if wire == "query":
        core.get_component("data_loader").search_paths.insert(0, str(QUERY_MODEL))
    client = boto3.Session(botocore_session=core).client(
        "sqs", region_name=REGION, endpoint_url=url, aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=60), verify=verify,
    )
    assert client.meta.service_model.protocol == wire
    return client


def cli_environment(key: str = KEY, secret: str = SECRET) -> dict[str, str]:
    """The AWS CLI's whole environment: credentials from variables, no config or credentials file of the user's."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class AwsCli:
    """
    The AWS CLI (`aws sqs`, from the venv) as a boto3-like client: each call runs one `aws sqs
    <command> --cli-input-json`, whose JSON is the action's parameters as boto3 takes them,
    and parses what it prints. ``prefix`` runs it under another command (`faketime`).

    A binary message attribute goes in as UTF-8 text (what the CLI's JSON input can hold) and
    comes back as the bytes the CLI prints in base64.
    """

    def __init__(self, url: str, key: str = KEY, secret: str = SECRET, prefix: tuple[str, ...] = ()):
        self.url = url
        self.environment = cli_environment(key, secret)
        self.prefix = prefix

    def __getattr__(self, operation: str) -> Callable[..., dict[str, Any]]:
        if operation.startswith("_"):
            raise AttributeError(operation)
        return lambda **params: self.call(operation, params)

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        arguments = [
            "sqs", operation.replace("_", "-"), "--endpoint-url", self.url, "--output", "json",
            "--cli-input-json", json.dumps(params, default=lambda blob: blob.decode("utf-8")),
        ]
        code, stdout, stderr = self.run(arguments)
        if code != 0:
            match = CLI_ERROR.search(stderr)
            assert match, stderr
            raise ClientError({"Error": {"Code": match[1], "Message": match[3].strip()}}, match[2])
        result = json.loads(stdout) if stdout.strip() else {}
        for message in result.get("Messages", []):
            for value in message.get("MessageAttributes", {}).values():
                if "BinaryValue" in value:
                    value["BinaryValue"] = base64.b64decode(value["BinaryValue"])
        return result

    def run(self, arguments: list[str]) -> tuple[int, str, str]:
        """`aws` with ``arguments``: its exit status, what it printed and what it complained of."""
        done = subprocess.run(
            [*self.prefix, AWS, *arguments], env=self.environment, capture_output=True, text=True, timeout=60
        )
        return done.returncode, done.stdout, done.stderr


class AwsCliInProcess(AwsCli):
    """
    The same CLI run in this process: `aws` is `awscli.clidriver.main()`, and so is this, on
    the same environment, but without the half second that starting Python and loading the
    CLI take on every call of a round of fifty.
    """

    _driver: CLIDriver | None = None

    def run(self, arguments: list[str]) -> tuple[int, str, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        # Importing awscli put its own data (the CLI's command model) on botocore's search path.
        environment = {**self.environment, "AWS_DATA_PATH": os.environ["AWS_DATA_PATH"]}
        with mock.patch.dict(os.environ, environment, clear=True), redirect_stdout(stdout), redirect_stderr(stderr):
            if self._driver is None:  # one per client, as its environment is
                self._driver = create_clidriver()
            code = self._driver.main(arguments)
        return code, stdout.getvalue(), stderr.getvalue()
