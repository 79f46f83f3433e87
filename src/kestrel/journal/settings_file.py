"""
The blocking half of the queues' runtime settings (`kestrel.settings`): the spool's file
``queue-settings.log``, one line per change.

Once the server runs, only the journal writer thread calls into this module; start-up reads
the file before then. Appends are fsynced before they count as done; a compaction replaces the
file whole, by a temporary file and a rename.
"""

from __future__ import annotations

import os

from kestrel.journal import files
from kestrel.journal.disk import write_all

# Where a compaction writes the file's replacement before renaming it into place.
COMPACTING_SUFFIX = ".new"


def read_lines(directory: str) -> tuple[list[bytes], bytes]:
    """The file's whole lines (without their line feeds), and what follows the last one: a torn append."""
    try:
        with open(os.path.join(directory, files.SETTINGS_FILE), "rb") as settings:
            content = settings.read()
    except FileNotFoundError:
        return [], b""
    *lines, torn = content.split(b"\n")
    return lines, torn


def compaction_interrupted(directory: str) -> bool:
    """Whether a compaction's replacement was left behind (by a crash before its rename): the next compaction overwrites it."""
    return os.path.exists(os.path.join(directory, files.SETTINGS_FILE + COMPACTING_SUFFIX))


class SettingsFile:
    """The settings file of one spool directory, appended to and compacted on the writer thread."""

    def __init__(self, directory: str):
        self.directory = directory
        self.path = os.path.join(directory, files.SETTINGS_FILE)
        self._fd: int | None = None
        self._size = 0

    def append(self, lines: bytes | bytearray) -> None:
        """
        Append whole lines and fsync them. A write that fails is cut back off, so that no half
        line stays in front of the lines appended later.
        """
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
            # The file may be new: its name must be on disk too.
            files.fsync_directory(self.directory)
        try:
            write_all(self._fd, lines)
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self._size)
            raise
        self._size += len(lines)

    def replace(self, lines: bytes) -> None:
        """Make `lines` the whole file: written and fsynced aside, then renamed over it, so a crash leaves one or the other."""
        self.close()
        replacement = self.path + COMPACTING_SUFFIX
        fd = os.open(replacement, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, lines)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(replacement, self.path)
        files.fsync_directory(self.directory)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
