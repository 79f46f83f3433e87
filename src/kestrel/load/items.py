"""
What the load tools put in queues: a fixed lyric-like text, and numbered items that say which
item of which run they are, so a reader can check what it got.
"""

from __future__ import annotations

import secrets

# One line on purpose: the text protocol carries items as lines.
LYRIC = (
    b"the night train hums along the wire / every window holds a stranger's light / "
    b"we count the stations we will never see / and the rails keep singing through the night / "
    b"carry me home on the morning freight / carry me home though the hour is late / "
)


def filler(size: int) -> bytes:
    """`size` bytes of the lyric, repeated as far as needed."""
    return (LYRIC * (size // len(LYRIC) + 1))[:size]


class NumberedItems:
    """
    Items that start with their number (8 hex digits) and the run's tag (8 hex digits), padded
    with the lyric to `size` bytes. The tag keeps items left over from another run apart.
    """

    HEADER = len(b"00000000 00000000 ")

    def __init__(self, size: int):
        self.tag = secrets.token_hex(4).encode()
        self.padding = filler(max(0, size - self.HEADER))

    def make(self, number: int) -> bytes:
        return b"%08x %s %s" % (number, self.tag, self.padding)

    def number(self, item: bytes) -> int | None:
        """The item's number, or None for an item that this run did not write."""
        if item[9:17] != self.tag:
            return None
        try:
            return int(item[:8], 16)
        except ValueError:
            return None
