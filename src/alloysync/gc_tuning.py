"""The garbage collector's settings for alloysync's long-running processes (serve, the worker
processes, the scheduler, the emulator).

CPython frees almost every object by reference counting; its cyclic collector only finds the rare
cycles. With the default thresholds (700, 10, 10) it runs a young collection every 700 net new
containers, and a full one, over every object of the process, once enough have survived. serve
makes thousands of containers per Alloy page it parses and per batch of events it reports, most
alive for a moment: the defaults collect in the middle of each page, promote the page to the old
generations, and so run full collections of the whole heap (about 80,000 objects, 40-50 ms each,
for which serve's event loop waits). Measured over 2,000 end-to-end jobs (benchmarks/throughput.py):
0.37-0.43 s of serve's CPU (about 15 %) went to collections that freed about 1,000 objects;
with the settings below, about 0.08 s, and end to end ran 10-15 % faster side by side.

`tune_for_throughput`, called once a process has started (its modules, settings and task registry
loaded):
  - `gc.freeze()` moves every object alive at that moment to the permanent generation, which no
    collection walks again: modules, classes, functions, settings, the registry, which live as
    long as the process anyway (one of them that later became cyclic garbage would stay);
  - a young generation of YOUNG_THRESHOLD containers: a collection comes once per several pages,
    when the objects of the pages before are already freed, so little is promoted and full
    collections become rare. Cycles are still collected; they wait a little longer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # net new containers before a young collection (CPython's default: 700)
MIDDLE_THRESHOLD = 10  # young collections before a middle one (the default)
OLD_THRESHOLD = 10  # middle collections before a full one may run (the default)


def tune_for_throughput() -> None:
    """Freeze what start-up made and raise the young generation's threshold (see the module docstring)."""
    gc.collect()  # what start-up left as cyclic garbage is freed, not frozen
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
