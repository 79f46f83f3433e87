"""SIGKILL under sustained load, many times in a row (bounded form of crash.py)."""

from kestrel.test.acceptance.crash import run


def test_kills_lose_and_duplicate_nothing_when_every_write_is_fsynced(tmp_path):
    result = run(tmp_path, kills=6, sync="0")
    assert result.stored > 1000
    assert result.reads_left_open > 0
    assert result.ok, result
    # Files the read-behind cursor passed were packed: the spool holds about the backlog.
    assert result.journal_bytes < 8 * 32 * 1024 + 2 * result.drained * 440, result


def test_kills_with_a_periodic_fsync_lose_only_what_was_acknowledged_just_before(tmp_path):
    result = run(tmp_path, kills=4, sync="100ms")
    assert result.stored > 1000
    assert not result.invented and not result.not_returned, result
    # Replies do not wait for the disk: what a kill loses was acknowledged moments before it
    # (the writer had not written it yet): within one sync period plus scheduling, because
    # replies wait for a writer whose batch takes longer than the period.
    assert result.lost_within_seconds_of_a_kill < 0.5, result
