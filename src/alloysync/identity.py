"""How an alloysync process names itself where others can see it: `host:pid`.

The name goes into the poller lease (which replica holds it), the live-workers registry and each
run record (which worker ran a step).
"""

from __future__ import annotations

import os
import socket


def process_name() -> str:
    """`host:pid` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"
