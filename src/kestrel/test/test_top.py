"""`kestrel top`: frames computed and drawn from recorded stats (no server, no terminal)."""

from rich.console import Console

from kestrel.tools.top import Sample, duration, frame, render, size


def stats(queues: dict, gets: int = 0, sets: int = 0, connections: int = 3) -> dict:
    full = {
        name: {"items": items, "bytes": items * 100, "total_items": total, "open_transactions": open_reads,
               "head_age": oldest, "mem_items": min(items, 50), "logsize": total * 120}
        for name, (items, total, open_reads, oldest) in queues.items()
    }
    full["mail"]["retained_bytes"] = 3 * 1024**2  # a queue with retain set
    server = {"curr_connections": connections, "cmd_get": gets, "cmd_set": sets, "curr_items": sum(q[0] for q in queues.values())}
    return {"server": server, "queues": full}


BEFORE = Sample(100.0, "Up", stats({"jobs": (10, 100, 0, 50), "mail": (5, 50, 1, 10), "idle": (0, 7, 0, 0)}, gets=1000, sets=2000))
AFTER = Sample(102.0, "Up", stats(
    {"jobs": (10, 140, 2, 80), "mail": (85, 150, 1, 90_000), "idle": (0, 7, 0, 0), "new": (4, 4, 0, 5)},
    gets=1100, sets=2300,
))


def test_a_frame_gives_rates_over_the_interval_and_puts_what_backs_up_first():
    view = frame(BEFORE, AFTER)
    assert (view.status, view.connections, view.gets_per_second, view.sets_per_second) == ("Up", 3, 50.0, 150.0)
    assert [row.name for row in view.queues] == ["mail", "new", "jobs", "idle"]
    mail, new, jobs, idle = view.queues
    assert (mail.adds_per_second, mail.removes_per_second, mail.disk_items) == (50.0, 10.0, 35)
    assert (jobs.adds_per_second, jobs.removes_per_second, jobs.open_reads) == (20.0, 20.0, 2)
    assert (new.adds_per_second, new.removes_per_second) == (2.0, 0.0)  # new since the last sample
    assert (idle.adds_per_second, idle.removes_per_second, idle.growth) == (0.0, 0.0, 0.0)


def test_a_rendered_frame_shows_the_server_and_each_queue():
    console = Console(record=True, width=110, color_system=None)
    console.print(render(frame(BEFORE, AFTER)))
    lines = console.export_text().splitlines()
    assert lines[0].split() == ["status", "Up", "connections", "3", "gets/s", "50", "sets/s", "150", "items", "99", "queues", "4"]
    assert lines[1].split() == ["queue", "items", "bytes", "in/s", "out/s", "open", "oldest", "memory", "disk", "journal", "retained"]
    assert lines[2].split() == ["mail", "85", "8.3", "KB", "50", "10", "1", "90.0", "s", "50", "35", "17.6", "KB", "3.0", "MB"]
    assert lines[3].split()[-2:] == ["0", "B"]  # no retain
    assert [line.split()[0] for line in lines[2:6]] == ["mail", "new", "jobs", "idle"]


def test_a_frame_taller_than_the_terminal_says_how_many_queues_it_leaves_out():
    console = Console(record=True, width=110, color_system=None)
    console.print(render(frame(BEFORE, AFTER), rows=2))
    lines = console.export_text().splitlines()
    assert [line.split()[0] for line in lines[2:4]] == ["mail", "new"]
    assert lines[4] == "... and 2 more queues"


def test_sizes_and_durations_read_at_a_glance():
    assert [size(value) for value in (0, 1023, 1024, 5 * 1024**2, 3 * 1024**4)] == ["0 B", "1,023 B", "1.0 KB", "5.0 MB", "3,072.0 GB"]
    assert [duration(ms) for ms in (0, 999, 1500, 300_000, 36_000_000)] == ["0 ms", "999 ms", "1.5 s", "5 min", "10.0 h"]
