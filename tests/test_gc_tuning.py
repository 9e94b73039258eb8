"""The collector settings of alloysync's processes (gc_tuning.py), checked in a fresh interpreter:
the test process's own collector is left alone."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json, weakref
from alloysync.gc_tuning import YOUNG_THRESHOLD, tune_for_throughput

class Node:
    pass

before_garbage = Node(); before_garbage.self = before_garbage  # start-up's cyclic garbage
probe_start = weakref.ref(before_garbage); del before_garbage
tune_for_throughput()
start_up_garbage_freed = probe_start() is None

later = Node(); later.self = later  # a cycle made after tuning
probe_later = weakref.ref(later); del later
kept = [[] for _ in range(2 * YOUNG_THRESHOLD)]  # net new containers: a young collection runs
print(json.dumps({
    "threshold": gc.get_threshold(),
    "frozen": gc.get_freeze_count(),
    "enabled": gc.isenabled(),
    "start_up_garbage_freed": start_up_garbage_freed,
    "later_cycle_freed": probe_later() is None,
}))
"""


def test_start_up_is_frozen_and_cycles_made_later_are_still_collected() -> None:
    answer = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    state = json.loads(answer.stdout)
    assert state["threshold"] == [10_000, 10, 10]
    assert state["frozen"] > 1000  # the modules, classes and functions imported at start-up
    assert state["enabled"] is True
    assert state["start_up_garbage_freed"] is True  # collected before freezing, not frozen forever
    assert state["later_cycle_freed"] is True  # the collector still runs, on its own, with no gc.collect()
