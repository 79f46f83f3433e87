"""The `kestrel` command: which request each admin command makes, where it finds the admin
port and a queue's files (the real service is in the acceptance tests)."""

import socket

import pytest

from kestrel import command
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
        (["stats", "--json", "a", "b"], ("GET", "/stats.json", {"queue": ["a", "b"]})),
        (["stats", "jobs_*", "mail", "--top", "5"], ("GET", "/stats.txt", {"queue": ["mail"], "prefix": ["jobs_"], "top": 5})),
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
    assert admin.run(client, command.parser().parse_args(argv)) == "ok"
    assert client.requests == [request_made]


def test_the_admin_port_comes_from_the_config_or_the_command_line(tmp_path, monkeypatch):
    config = tmp_path / "etc" / "kestrel.conf"
    config.parent.mkdir()
    config.write_text('[server]\nqueue_path = "spool"\nadmin_listen = "tcp:2999:interface=10.0.0.7"\n')
    monkeypatch.delenv("KESTREL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert command.admin_address(command.parser().parse_args(["ping"])) == ("10.0.0.7", 2999)
    monkeypatch.chdir(tmp_path / "etc")
    monkeypatch.setenv("KESTREL_CONFIG", str(config))
    assert command.admin_address(command.parser().parse_args(["ping"])) == ("10.0.0.7", 2999)
    assert command.admin_address(command.parser().parse_args(["--admin", "h:1", "ping"])) == ("h", 1)


@pytest.mark.parametrize(
    "endpoint, address",
    [
        ("tcp:2223", ("127.0.0.1", 2223)),
        ("tcp:2223:interface=0.0.0.0", ("127.0.0.1", 2223)),
        ("tcp:port=2223", None),
        (r"tcp6:2223:interface=\:\:1", ("::1", 2223)),
        ("unix:/run/kestrel-admin.sock", None),
    ],
)
def test_a_tcp_admin_endpoint_gives_the_address_to_reach(endpoint, address):
    if address is None:
        with pytest.raises(command.CommandError):
            command.tcp_address(endpoint)
    else:
        assert command.tcp_address(endpoint) == address


def test_without_a_config_the_error_says_how_to_give_one(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KESTREL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert command.main(["stats"]) == 2
    assert capsys.readouterr().err == "kestrel: etc/kestrel.conf: no such file (give -c CONFIG or set KESTREL_CONFIG)\n"


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_server_exits_2(capsys, unused_port):
    assert command.main(["--admin", f"127.0.0.1:{unused_port}", "ping"]) == 2
    assert "cannot reach the admin port" in capsys.readouterr().err


def test_dump_reads_a_queues_files_in_replay_order_and_changes_nothing(tmp_path, monkeypatch, capsys):
    spool = tmp_path / "spool"
    spool.mkdir()
    for name in ("jobs.200", "jobs.100", "jobs", "jobs~~300", "other"):
        (spool / name).write_bytes(b"")
    config = tmp_path / "kestrel.conf"
    config.write_text(f'[server]\nqueue_path = "{spool}"\n')
    assert command.main(["-c", str(config), "dump", "jobs"]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.endswith(":")] == [f"{spool}/{name}:" for name in ("jobs.100", "jobs.200", "jobs")]
    assert sorted(path.name for path in spool.iterdir()) == ["jobs", "jobs.100", "jobs.200", "jobs~~300", "other"]
    assert command.main(["-c", str(config), "dump", "nothing"]) == 2
    assert "no journal of a queue 'nothing'" in capsys.readouterr().err


def test_top_with_an_unreachable_server_exits_2(capsys, unused_port):
    assert command.main(["--admin", f"127.0.0.1:{unused_port}", "top"]) == 2
    assert "cannot reach the admin port" in capsys.readouterr().err
