"""
Which queues a stats listing reports: memcache `stats` and `dump_stats`, the admin service's
`/stats.json` and `/stats.txt`. While a server has few queues, a listing reports every one
(as Kestrel does); above `stats_queue_limit` a listing that names nothing reports none, and
one given a prefix at most the first `limit` it matches, so that a server with a million
queues answers with its totals and how many queues it left out, not a million blocks.
Choosing costs one pass over the names (a heap keeps the first or the deepest few).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from kestrel.collection import QueueCollection

# `dump_stats jobs*` and `kestrel stats 'jobs*'`: a selector ending in a star is a name prefix.
# A queue whose own name ends in a star is still listed by it, since its name starts with the rest.
PREFIX_MARK = "*"
# The stat that says how many queues a listing left out (only when it left some out).
QUEUES_OMITTED = "queues_omitted"


@dataclass(frozen=True)
class Listing:
    """The queues (and aliases) to report, in order, out of how many the request matched."""

    names: list[str]
    matched: int

    @property
    def omitted(self) -> int:
        return self.matched - len(self.names)


def by_name(
    collection: QueueCollection, limit: int, names: Iterable[str] = (), prefixes: Iterable[str] = (),
) -> Listing:
    """
    The queues named, in the order given, then the first `limit` by name of those under the
    prefixes; with neither, every queue and alias while they are no more than `limit`, else none.
    """
    named, prefixes = list(names), list(prefixes)
    if not named and not prefixes:
        everything = len(collection) + sum(1 for alias in collection.aliases() if alias not in collection)
        if everything > limit:
            return Listing([], everything)
        return Listing(sorted(set(collection.names()) | set(collection.aliases())), everything)
    matches: set[str] = set()
    for prefix in prefixes:
        matches |= collection.names_starting_with(prefix)
    matches.difference_update(named)
    return Listing(named + heapq.nsmallest(limit, matches), len(named) + len(matches))


def deepest(collection: QueueCollection, count: int) -> Listing:
    """The `count` queues with the most items, deepest first (aliases hold no items)."""
    return Listing([queue.name for queue in collection.deepest(count)], len(collection))


def split_selectors(selectors: Iterable[str]) -> tuple[list[str], list[str]]:
    """Queue names and prefixes (`jobs*`) as a request mixes them: (names, prefixes)."""
    names, prefixes = [], []
    for selector in selectors:
        if selector.endswith(PREFIX_MARK):
            prefixes.append(selector[:-1])
        else:
            names.append(selector)
    return names, prefixes
