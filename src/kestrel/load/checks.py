"""
What the load tools check about what they measured: that counts match, and that every
numbered item was delivered exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SHOWN = 10  # ids listed in a failure's detail; the count says how many there are


@dataclass(frozen=True)
class Check:
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"

    name: str
    status: str
    detail: str

    @classmethod
    def that(cls, name: str, holds: bool, detail: str) -> Check:
        return cls(name, cls.OK if holds else cls.FAILED, detail)

    @classmethod
    def skipped(cls, name: str, reason: str) -> Check:
        return cls(name, cls.SKIPPED, reason)

    def as_json(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail}

    def line(self) -> str:
        return f"check {self.name}: {self.status.upper()} ({self.detail})"


def count_check(name: str, what: str, got: int, expected: int) -> Check:
    return Check.that(name, got == expected, f"{got} of {expected} {what}")


def listed(numbers: list[int]) -> str:
    shown = " ".join(f"{number:08x}" for number in numbers[:SHOWN])
    return shown + (" ..." if len(numbers) > SHOWN else "")


class Deliveries:
    """How many times each of the items numbered 0 to expected - 1 arrived."""

    def __init__(self, expected: int):
        self.expected = expected
        self.times = [0] * expected
        self.strangers = 0

    def add(self, numbers: Iterable[int]) -> None:
        times = self.times
        for number in numbers:
            if 0 <= number < self.expected:
                times[number] += 1
            else:
                self.strangers += 1

    @property
    def missing(self) -> list[int]:
        return [number for number, times in enumerate(self.times) if times == 0]

    @property
    def duplicated(self) -> list[int]:
        return [number for number, times in enumerate(self.times) if times > 1]

    def check(self, name: str = "exactly once") -> Check:
        missing, duplicated = self.missing, self.duplicated
        problems = []
        if missing:
            problems.append(f"{len(missing)} never delivered: {listed(missing)}")
        if duplicated:
            problems.append(f"{len(duplicated)} delivered more than once: {listed(duplicated)}")
        if self.strangers:
            problems.append(f"{self.strangers} with numbers out of range")
        if problems:
            return Check.that(name, False, "; ".join(problems))
        return Check.that(name, True, f"all {self.expected} items delivered once")


def order_check(numbers: list[int]) -> Check:
    """The items were read as 0, 1, 2, ... (an item this run did not write reads as -1)."""
    wrong = [(position, number) for position, number in enumerate(numbers) if number != position]
    if not wrong:
        return Check.that("in order", True, f"{len(numbers)} items read in the order written")
    shown = ", ".join(f"#{position} was {number:08x}" for position, number in wrong[:SHOWN])
    return Check.that("in order", False, f"{len(wrong)} of {len(numbers)} items out of place: {shown}")
