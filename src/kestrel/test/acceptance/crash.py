"""
Crash harness: sustained load on a real server, SIGKILL at random moments, restart, again.

Producers add numbered items and note every `STORED`. Consumers take items with reliable
reads (`get q/close/open`), abort some, and now and then walk away with a read still open.
The queue's small limits keep journal rotations, rewrites, read-behind and packing going
all the time. After the last kill the queue is drained, and the ledger is checked:

- every acknowledged item was confirmed once, or is still queued (nothing lost);
- no item was confirmed twice, or confirmed and still queued (nothing duplicated);
- nothing came back that was never sent (nothing invented);
- an item whose read was open, unconfirmed, when the server died came back.

Only a confirm whose reply never arrived is ambiguous: the server may or may not have
recorded it, so such an item may be gone or may come back (once).

Run the long form with `python -m kestrel.test.acceptance.crash --kills 200`.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kestrel.load.process import KestrelProcess, RawClient, free_port, write_config

QUEUE = "crash"
QUEUE_CONFIG = f"""
[queues.{QUEUE}]
sync_journal = "{{sync}}"
max_memory_size = "32KB"
max_journal_size = "128KB"
default_journal_size = "16KB"
min_journal_compact_delay = "0s"
"""
PAYLOAD = b"p" * 400




@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: set[bytes] = field(default_factory=set)
    stored: dict[bytes, float] = field(default_factory=dict)  # item -> when STORED arrived
    confirmed: Counter = field(default_factory=Counter)
    ambiguous: set[bytes] = field(default_factory=set)  # confirm sent, reply lost
    must_return: set[bytes] = field(default_factory=set)  # open, unconfirmed, when the connection died
    received: int = 0


class Worker(threading.Thread):
    def __init__(self, port: int, ledger: Ledger, stop: threading.Event, seed: int):
        super().__init__(daemon=True)
        self.port = port
        self.ledger = ledger
        self.stop = stop
        self.random = random.Random(seed)

    def connect(self) -> RawClient | None:
        while not self.stop.is_set():
            try:
                return RawClient(self.port, timeout=5)
            except OSError:
                time.sleep(0.02)
        return None

    def run(self) -> None:
        while not self.stop.is_set():
            client = self.connect()
            if client is None:
                return
            try:
                self.work(client)
            except (OSError, AssertionError):
                pass
            finally:
                self.lost_connection()
                client.close()

    def lost_connection(self) -> None:
        pass


class Producer(Worker):
    def __init__(self, number: int, *args):
        super().__init__(*args)
        self.number = number
        self.count = 0

    def work(self, client: RawClient) -> None:
        while not self.stop.is_set():
            item = b"%d-%07d-" % (self.number, self.count) + PAYLOAD
            self.count += 1
            with self.ledger.lock:
                self.ledger.sent.add(item)
            if client.set(QUEUE, item) == b"STORED":
                with self.ledger.lock:
                    self.ledger.stored[item] = time.monotonic()


class Consumer(Worker):
    def __init__(self, *args):
        super().__init__(*args)
        self.held: bytes | None = None
        self.confirming: bytes | None = None

    def work(self, client: RawClient) -> None:
        while not self.stop.is_set():
            if self.held is not None and self.random.random() < 0.05:
                # Walk away with the read open: the item must come back.
                with self.ledger.lock:
                    self.ledger.must_return.add(self.held)
                self.held = None
                return
            if self.held is not None and self.random.random() < 0.05:
                client.send(b"get %s/abort\r\n" % QUEUE.encode())
                assert client.line() == b"END"
                self.held = None
                continue
            key = f"{QUEUE}/close/open/t=50"
            client.send(b"get %s\r\n" % key.encode())
            self.confirming, self.held = self.held, None
            item = client.read_value(key)
            with self.ledger.lock:
                if self.confirming is not None:
                    self.ledger.confirmed[self.confirming] += 1
                if item is not None:
                    self.ledger.received += 1
            self.confirming, self.held = None, item

    def lost_connection(self) -> None:
        with self.ledger.lock:
            if self.confirming is not None:
                self.ledger.ambiguous.add(self.confirming)
            if self.held is not None:
                self.ledger.must_return.add(self.held)
        self.confirming = self.held = None


@dataclass
class Result:
    kills: int
    sync_journal: str
    sent: int
    stored: int
    confirmed: int
    drained: int
    ambiguous: int
    reads_left_open: int
    lost_count: int
    duplicated_count: int
    lost: list[str]
    duplicated: list[str]
    invented: list[str]
    not_returned: list[str]
    lost_within_seconds_of_a_kill: float
    journal_files: int
    journal_bytes: int

    @property
    def ok(self) -> bool:
        """The promise of `sync_journal = "0"`: exactly once, nothing invented."""
        return not (self.lost or self.duplicated or self.invented or self.not_returned)


def run(directory: Path, kills: int, sync: str = "0", producers: int = 3, consumers: int = 3, seed: int = 1) -> Result:
    chooser = random.Random(seed)
    port = free_port()
    config = write_config(
        directory,
        server=f'memcache_listen = "tcp:{port}:interface=127.0.0.1"',
        queues=QUEUE_CONFIG.format(sync=sync),
    )
    server = KestrelProcess(directory, config).start()
    ledger, stop = Ledger(), threading.Event()
    workers = [Producer(n, port, ledger, stop, seed * 100 + n) for n in range(producers)]
    workers += [Consumer(port, ledger, stop, seed * 1000 + n) for n in range(consumers)]
    for worker in workers:
        worker.start()
    kill_times = []
    try:
        for _ in range(kills):
            time.sleep(chooser.uniform(0.2, 0.8))
            server.kill()
            kill_times.append(time.monotonic())
            server.start()
        time.sleep(0.3)
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
    server.stop()
    spool = [path for path in (directory / "spool").iterdir() if path.name.startswith(QUEUE)]
    on_disk = (len(spool), sum(path.stat().st_size for path in spool))
    server.start()
    client = server.client()
    drained = []
    while (item := client.get(QUEUE)) is not None:
        drained.append(item)
    server.stop()
    return account(ledger, drained, kills, sync, kill_times, on_disk)


def account(
    ledger: Ledger, drained: list[bytes], kills: int, sync: str, kill_times: list[float], on_disk: tuple[int, int]
) -> Result:
    queued = Counter(drained)
    settled = set(ledger.confirmed) | ledger.ambiguous | set(queued)
    lost = [item for item in ledger.stored if item not in settled]
    duplicated = [item for item, count in (ledger.confirmed + queued).items() if count > 1]
    invented = [item for item in queued if item not in ledger.sent]
    not_returned = [item for item in ledger.must_return if item not in settled]
    # How long before a kill each lost item had been acknowledged (periodic fsync bound).
    gaps = [min((kill - ledger.stored[item] for kill in kill_times if kill >= ledger.stored[item]), default=0.0) for item in lost]
    short = lambda items: [item[:12].decode() for item in items[:10]]  # noqa: E731
    return Result(
        kills=kills,
        sync_journal=sync,
        sent=len(ledger.sent),
        stored=len(ledger.stored),
        confirmed=sum(ledger.confirmed.values()),
        drained=len(drained),
        ambiguous=len(ledger.ambiguous),
        reads_left_open=len(ledger.must_return),
        lost_count=len(lost),
        duplicated_count=len(duplicated),
        lost=short(lost),
        duplicated=short(duplicated),
        invented=short(invented),
        not_returned=short(not_returned),
        lost_within_seconds_of_a_kill=round(max(gaps, default=0.0), 3),
        journal_files=on_disk[0],
        journal_bytes=on_disk[1],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--sync", default="0", help='the queue\'s sync_journal: "0", a period such as "100ms", or "never"')
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        result = run(Path(work), options.kills, options.sync, seed=options.seed)
    print(json.dumps(result.__dict__ | {"exactly_once": result.ok}, indent=2))
    if options.sync == "0":
        return 0 if result.ok else 1
    return 0 if not (result.invented or result.not_returned) else 1


if __name__ == "__main__":
    raise SystemExit(main())
