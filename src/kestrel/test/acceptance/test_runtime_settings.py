"""Runtime queue settings (kestrel.settings) in a real `twistd kestrel` process: given through the manhole, kept across a crash."""

import ast
import os

import pytest
import pytest_twisted
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import Factory

from kestrel.journal.files import SETTINGS_FILE
from kestrel.load.process import wait_until
from kestrel.test.acceptance.test_manhole_ssh import MANHOLE, Output, new_key, ssh_command


@pytest.fixture
def operator_key(tmp_path):
    key = new_key(tmp_path / "operator_key")
    (tmp_path / "manhole_keys").write_bytes(key.public().toString("openssh") + b" operator\n")
    return key


@inlineCallbacks
def run_in_manhole(kestrel, tmp_path, key, line: str):
    """Run one line in the server's manhole; returns what it printed."""
    output = Output()
    yield ssh_command(kestrel, tmp_path, key, line.encode()).connect(Factory.forProtocol(lambda: output))
    printed = yield output.done
    return printed.decode().strip()


@pytest_twisted.inlineCallbacks
def test_runtime_settings_and_metadata_survive_a_crash(make_server, tmp_path, operator_key):
    kestrel = make_server(queues='[queues.jobs]\nmax_item_size = 100\n' + MANHOLE)
    yield run_in_manhole(kestrel, tmp_path, operator_key, 'collection.configure("jobs", {"max_items": 1})')
    yield run_in_manhole(kestrel, tmp_path, operator_key, 'collection.set_metadata("empty", {"tags": {"team": "billing"}})')
    settings = tmp_path / "spool" / SETTINGS_FILE
    assert wait_until(lambda: settings.exists() and settings.read_bytes().count(b"\n") == 2)

    kestrel.kill()
    kestrel.start()
    client = kestrel.client()
    assert client.set("jobs", b"one") == b"STORED"
    assert client.set("jobs", b"two") == b"NOT_STORED"
    assert "queue_empty_items" in client.stats()
    printed = yield run_in_manhole(
        kestrel, tmp_path, operator_key,
        '(collection.settings("jobs"), collection.queue("jobs").config.max_item_size, collection.metadata("empty"))',
    )
    assert ast.literal_eval(printed) == ({"max_items": 1}, 100, {"tags": {"team": "billing"}})
    assert sorted(os.listdir(tmp_path / "spool")) == ["jobs", SETTINGS_FILE]
