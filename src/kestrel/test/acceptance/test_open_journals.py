"""Issue 15: a real server keeps its open journal files under max_open_journals with 10,000 active queues."""

from kestrel.load.process import KestrelProcess
from kestrel.load.queue_creation import create_queues, open_descriptors

CAP = 200
QUEUES = 10_000
BLOCK = 500
ITEM = b"x" * 64
# Descriptors the server may open beside its journal files while the queues are written:
# the client's connection, a file the writer opens after closing another, a read.
MARGIN = 10


def peek_every_queue(server: KestrelProcess) -> None:
    """Every queue still holds its item: pipelined peeks, a block per write."""
    client = server.client()
    for first in range(0, QUEUES, BLOCK):
        names = range(first, min(first + BLOCK, QUEUES))
        client.send(b"".join(b"get q%d/peek\r\n" % number for number in names))
        for number in names:
            assert client.read_value(f"q{number}/peek") == ITEM
    client.close()


def test_ten_thousand_active_queues_stay_under_the_cap_and_keep_their_items(make_server):
    server = make_server(server=f"max_open_journals = {CAP}")
    pid = server.process.pid
    baseline = open_descriptors(pid)
    seen = [baseline]
    create_queues(server, QUEUES, BLOCK, ITEM, lambda: seen.append(open_descriptors(pid)))
    # Written again, in the same order: every write reopens a file the cap closed.
    create_queues(server, QUEUES, BLOCK, ITEM, lambda: seen.append(open_descriptors(pid)))
    assert max(seen) <= baseline + CAP + MARGIN, (baseline, max(seen))
    peek_every_queue(server)
    server.restart()
    peek_every_queue(server)
    stats = server.client().stats()
    assert int(stats["curr_items"]) == 2 * QUEUES
    assert open_descriptors(server.process.pid) <= baseline + CAP + MARGIN
