"""kestrel-admin: which request each command makes (the real service is in the acceptance tests)."""

import socket

import pytest

from kestrel.tools import admin


class RecordingClient:
    def __init__(self):
        self.requests = []

    def get(self, path, **query):
        self.requests.append(("GET", path, query))
        return "ok"

    def post(self, path, **query):
        self.requests.append(("POST", path, query))
        return "ok"


@pytest.mark.parametrize(
    "argv, request_made",
    [
        (["ping"], ("GET", "/ping", {})),
        (["stats"], ("GET", "/stats.txt", {})),
        (["stats", "--json", "--queue", "a", "--queue", "b"], ("GET", "/stats.json", {"queue": ["a", "b"]})),
        (["server-info"], ("GET", "/server_info", {})),
        (["metrics"], ("GET", "/metrics", {})),
        (["status"], ("GET", "/status", {})),
        (["status", "readonly"], ("POST", "/status", {"set": "readonly"})),
        (["reload"], ("POST", "/reload", {})),
        (["quiesce"], ("POST", "/quiesce", {})),
        (["shutdown"], ("POST", "/shutdown", {})),
    ],
)
def test_each_command_makes_one_request(argv, request_made):
    client = RecordingClient()
    assert admin.run(client, admin.parser().parse_args(argv)) == "ok"
    assert client.requests == [request_made]


def test_host_and_port_name_the_service():
    options = admin.parser().parse_args(["--host", "10.0.0.7", "--port", "9999", "ping"])
    assert admin.AdminClient(options.host, options.port).base == "http://10.0.0.7:9999"


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_server_exits_2(capsys, unused_port):
    assert admin.main(["--port", str(unused_port), "ping"]) == 2
    assert "cannot reach" in capsys.readouterr().err
