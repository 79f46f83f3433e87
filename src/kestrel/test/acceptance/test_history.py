"""A real server with `retain`: the history is written beside the journal, reported in stats and metrics, and kept over a restart."""

from kestrel.load.process import wait_until
from kestrel.test.acceptance.test_admin_http import metrics

QUEUES = '[queues.kept]\nretain = "1h"\n'


def test_a_retaining_queue_reports_its_history_and_keeps_it_over_a_restart(make_server, tmp_path):
    kestrel = make_server(queues=QUEUES)
    client = kestrel.client()
    for value in (b"one", b"two"):
        assert client.set("kept", value) == b"STORED"
        assert client.set("plain", value) == b"STORED"
    assert client.get("kept") == b"one"
    assert wait_until(lambda: int(client.stats().get("queue_kept_retained_bytes", 0)) > 0)
    stats = client.stats()
    assert "queue_plain_retained_bytes" not in stats  # Kestrel's stats, unchanged without retain
    assert int(stats["queue_kept_disk_bytes"]) > int(stats["queue_kept_retained_bytes"])
    kept = (("queue", "kept"),)
    assert metrics(kestrel)[("kestrel_queue_retained_bytes", kept)] == int(stats["queue_kept_retained_bytes"])
    assert metrics(kestrel)[("kestrel_queue_retained_bytes", (("queue", "plain"),))] == 0
    segments = list((tmp_path / "spool" / ".history" / "kept").iterdir())
    assert len(segments) == 1 and not (tmp_path / "spool" / ".history" / "plain").exists()

    retained = int(stats["queue_kept_retained_bytes"])
    kestrel.stop()
    assert sorted(path.name for path in (tmp_path / "spool").iterdir() if path.name.startswith("kept")) == ["kept"]
    kestrel = kestrel.restart()
    client = kestrel.client()
    assert int(client.stats()["queue_kept_retained_bytes"]) == retained
    assert client.get("kept") == b"two"
