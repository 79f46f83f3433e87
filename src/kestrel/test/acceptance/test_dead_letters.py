"""Dead-letter queues (max_deliveries, dead_letter_queue) in a real `twistd kestrel` process, over memcache and Thrift."""

from kestrel.load.process import wait_until

DEAD_LETTERS = '[queues.jobs]\nmax_deliveries = 3\ndead_letter_queue = "dead"\n'


def test_an_item_read_max_deliveries_times_moves_to_the_dead_letter_queue(make_server):
    kestrel = make_server(queues=DEAD_LETTERS)
    client = kestrel.client()
    assert client.set("jobs", b"poison") == b"STORED"
    assert client.set("jobs", b"fine") == b"STORED"

    # Read once and aborted, once by a client that goes away, once by Thrift and never confirmed.
    assert client.get("jobs/open") == b"poison"
    assert client.get("jobs/abort") is None
    leaving = kestrel.client()
    assert leaving.get("jobs/open") == b"poison"
    leaving.close()
    assert wait_until(lambda: client.stats()["queue_jobs_open_transactions"] == "0")
    thrift = kestrel.thrift_client()
    assert [item.data for item in thrift.get("jobs", 1, 0, 100)] == [b"poison"]
    assert wait_until(lambda: client.stats()["queue_jobs_open_transactions"] == "0")

    assert client.get("jobs/open") == b"fine"
    assert client.get("dead") == b"poison"
    assert client.stats()["queue_jobs_dead_lettered"] == "1"
    thrift.close()
