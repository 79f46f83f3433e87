"""A journal that cannot be written: refuse new items, keep serving reads, lose nothing, recover."""

import errno
import os

import pytest

from kestrel.journal import disk
from kestrel.journal.writer import WRITE_RETRY_INTERVAL
from kestrel.queue import QueueUnavailable
from kestrel.test.support import ServerHarness, drain


class FullDisk:
    """
    Replaces os.write in the journal's disk module. While full, a write of more than
    `room` bytes takes a few bytes and then fails, as on a filling disk.
    """

    def __init__(self, monkeypatch):
        self.full = False
        self.room = 0
        self.failures = 0
        self._took_some = False
        real_write = os.write

        def write(fd, data):
            if not self.full or len(data) <= self.room:
                return real_write(fd, data)
            if not self._took_some:
                self._took_some = True
                return real_write(fd, bytes(data[:3]))
            self._took_some = False
            self.failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(disk.os, "write", write)


@pytest.fixture
def full_disk(monkeypatch):
    return FullDisk(monkeypatch)


def test_a_full_disk_refuses_new_items_keeps_reads_and_recovers(harness, full_disk):
    queue = harness.queue()
    for data in (b"one", b"two", b"three"):
        queue.add(data)
    harness.settle()
    size_before = os.path.getsize(os.path.join(harness.directory, "test"))

    full_disk.full = True
    assert queue.add(b"four")  # accepted in memory; its journal write is still to come
    harness.settle()
    assert queue.journal.failure is not None
    # The partly written record was cut off again: the file holds whole records only.
    assert os.path.getsize(os.path.join(harness.directory, "test")) == size_before
    with pytest.raises(QueueUnavailable):
        queue.add(b"five")
    assert queue.remove().data == b"one"

    harness.clock.advance(WRITE_RETRY_INTERVAL)
    harness.settle()
    assert full_disk.failures == 2
    assert queue.journal.failure is not None

    full_disk.full = False
    harness.clock.advance(WRITE_RETRY_INTERVAL)
    harness.settle()
    assert queue.journal.failure is None
    assert queue.add(b"six")

    queue = harness.restart(queue)
    assert drain(queue) == [b"two", b"three", b"four", b"six"]


def test_a_full_disk_retries_a_rewrite_with_its_whole_content(harness, full_disk):
    queue = harness.queue(default_journal_size=64)
    queue.add(b"x" * 60)
    queue.add(b"keep")
    harness.settle()
    full_disk.full = True
    full_disk.room = 6  # the two small records below fit; the rewritten journal does not
    queue.remove()  # the journal now passes default_journal_size: ...
    queue.remove(transaction=True)  # ...and an open read with an empty queue rewrites it
    assert queue.journal_rewrites == 1
    harness.settle()
    assert queue.journal.failure is not None
    assert full_disk.failures == 1
    assert not [name for name in os.listdir(harness.directory) if "~~" in name]
    full_disk.full = False
    harness.clock.advance(WRITE_RETRY_INTERVAL)
    harness.settle()
    assert queue.journal.failure is None
    assert not [name for name in os.listdir(harness.directory) if "~~" in name]
    assert drain(harness.restart(queue, default_journal_size=64)) == [b"keep"]


def test_memcache_set_on_a_failing_journal_is_a_server_error(harness, full_disk):
    from kestrel.test.test_memcache import connect

    kestrel = ServerHarness(harness)
    client = connect(kestrel)
    assert client.send(b"set q 0 0 1\r\na\r\n") == b"STORED\r\n"
    full_disk.full = True
    assert client.send(b"set q 0 0 4\r\nlost\r\n") == b"STORED\r\n"
    kestrel.settle()
    reply = client.send(b"set q 0 0 1\r\nb\r\n")
    assert reply.startswith(b"SERVER_ERROR queue q cannot be written")
    reader = connect(kestrel)
    assert reader.send(b"get q\r\n") == b"VALUE q 0 1\r\na\r\nEND\r\n"


def test_text_put_on_a_failing_journal_is_an_error_reply(harness, full_disk):
    from kestrel.test.test_text import connect as connect_text

    kestrel = ServerHarness(harness)
    client = connect_text(kestrel)
    assert client.send(b"put q:\na\n\n") == b"+1\n"
    full_disk.full = True
    client.send(b"put q:\nlost\n\n")
    kestrel.settle()
    assert client.send(b"put q:\nb\n\n").startswith(b"-queue q cannot be written")
    assert not client.closed
