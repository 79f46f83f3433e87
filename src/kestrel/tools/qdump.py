"""
Journal files record by record, in the spirit of Kestrel's `qdump` (`kestrel dump`).

Each record is one line, after its byte offset in hex: `ADD <len> [xid=<x>] [exp=<in>|expired]`,
`REM`, `RSV <xid>`, `XID <x>`, `CAN <xid>`, `ACK <xid>`, `CON <len> xid=<xid>`. Files given
together are one history, in the order given (a queue's rotated files by timestamp, then
the current one), followed by a summary: the journal size and operation count, the items
left and their bytes (open reads included, as Kestrel counts them), and the open reads.
The files are only read: a damaged tail is reported, not truncated as the server would.
"""

from __future__ import annotations

import mmap
import sys
import time
from collections import deque
from typing import TextIO

from kestrel.journal import records


class JournalDumper:
    """Follows the queue a journal describes, item sizes only, and prints its records."""

    def __init__(self, out: TextIO, data: bool = False, offsets: bool = True, quiet: bool = False, now_ms: int | None = None):
        self.out = out
        self.data = data
        self.offsets = offsets
        self.quiet = quiet
        self.now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self.size = 0
        self.operations = 0
        self.queue: deque[int] = deque()  # item sizes, head first
        self.open: dict[int, int] = {}  # xid -> item size
        self.xid = 0

    def dump_file(self, path: str) -> bool:
        """Dump one file; False if it ends in a damaged record."""
        with open(path, "rb") as journal:
            if not journal.seek(0, 2):
                return True
            with mmap.mmap(journal.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
                return self._dump(buffer)

    def _dump(self, buffer) -> bool:
        position = 0
        while position < len(buffer):
            try:
                record, end = records.decode(buffer, position)
            except (records.BrokenRecord, records.IncompleteRecord) as error:
                self._print(position, f"BROKEN ({error}): the server truncates the journal here at its next start")
                return False
            self.operations += 1
            self._print(position, self._apply(record))
            if self.data and record.data is not None:
                self.out.write(f"    {repr(record.data)[2:-1]}\n")
            self.size += end - position
            position = end
        return True

    def _apply(self, record: records.Record) -> str:
        """Follow one record; returns its line."""
        op = record.op
        if op in (records.ADD, records.ADDX, records.ADD_XID):
            self.queue.append(len(record.data))
            return f"ADD {len(record.data):<6d}" + (f" xid={record.xid}" if record.xid else "") + self._expiry(record)
        if op == records.REMOVE:
            self._take_head()
            return "REM"
        if op in (records.REMOVE_TENTATIVE_XID, records.REMOVE_TENTATIVE):
            # The legacy opcode names no xid: replay gives it the next one.
            self.xid = record.xid if op == records.REMOVE_TENTATIVE_XID else self.xid + 1
            size = self._take_head()
            if size is not None:
                self.open[self.xid] = size
            return f"RSV {self.xid}"
        if op == records.SAVE_XID:
            self.xid = record.xid
            return f"XID {record.xid}"
        if op == records.UNREMOVE:
            if record.xid in self.open:
                self.queue.appendleft(self.open.pop(record.xid))
            return f"CAN {record.xid}"
        if op == records.CONFIRM_REMOVE:
            self.open.pop(record.xid, None)
            return f"ACK {record.xid}"
        # CONTINUE: confirm an open read and add an item in one record.
        self.open.pop(record.xid, None)
        self.queue.append(len(record.data))
        return f"CON {len(record.data):<6d} xid={record.xid}" + self._expiry(record)

    def _take_head(self) -> int | None:
        # A file dumped without the ones before it may remove items it never saw.
        return self.queue.popleft() if self.queue else None

    def _expiry(self, record: records.Record) -> str:
        if not record.expiry:
            return ""
        remaining = record.expiry - self.now_ms
        return " expired" if remaining < 0 else f" exp={remaining / 1000:.3f}s"

    def _print(self, offset: int, line: str) -> None:
        if not self.quiet:
            prefix = f"{offset & 0xFFFFFFFF:08x}  " if self.offsets else ""
            self.out.write(f"{prefix}{line}".rstrip() + "\n")

    def summary(self) -> None:
        items = len(self.queue) + len(self.open)
        total = sum(self.queue) + sum(self.open.values())
        self.out.write(f"Journal size: {self.size} bytes, with {self.operations} operations.\n")
        self.out.write(f"{items} items totalling {total} bytes.\n")
        xids = f" (xids {', '.join(map(str, sorted(self.open)))})" if self.open else ""
        self.out.write(f"Open transactions: {len(self.open)}{xids}.\n")


def dump_files(paths: list[str], out: TextIO, data: bool = False, offsets: bool = True, quiet: bool = False) -> int:
    """
    Dump `paths` as one history, then the summary. Returns 0, 1 if a file ends in a damaged
    record, 2 if one cannot be read (said on stderr).
    """
    dumper = JournalDumper(out, data=data, offsets=offsets, quiet=quiet)
    intact = True
    for path in paths:
        if len(paths) > 1 and not quiet:
            out.write(f"{path}:\n")
        try:
            intact = dumper.dump_file(path) and intact
        except OSError as error:
            print(f"kestrel: {path}: {error.strerror}", file=sys.stderr)
            return 2
    dumper.summary()
    return 0 if intact else 1
