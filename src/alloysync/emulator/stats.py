"""Request counts per family (query, read, write, other) and HTTP status, for tests and benchmarks.

A request whose connection the emulator dropped on purpose (fault `down_mode: reset`) is counted
under the status `reset`.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from alloysync.emulator.limits import Family


class RequestStats:
    def __init__(self) -> None:
        self._counts: defaultdict[Family, Counter[str]] = defaultdict(Counter)

    def record(self, family: Family, status: int | str) -> None:
        self._counts[family][str(status)] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {str(family): dict(self._counts.get(family, {})) for family in Family}

    def clear(self) -> None:
        self._counts.clear()
