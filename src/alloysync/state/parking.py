"""Parking a run step that sleeps (`wait.until`): the run's side of a durable wait.

A step that asks to sleep until a time is not held by a worker thread: `park` (one Lua script,
`park_step.lua`) puts the run back to `queued` at the same step with no owner, takes it out of
`runs:running` and files it in `runs:pending` under its wake time plus a margin, with the Sleeping
event; the worker then re-sends the same Dramatiq message with a delay (worker/sleeps.py). When the
delayed message arrives, it claims the step like a first delivery and the step runs again (and,
its time having come, returns). If that message is lost, `RunQueue.recover` finds the run in
`runs:pending` after the margin and sends the step again. A cancel while it sleeps ends the run at
once (it is queued, see cancel_job.lua).
"""

from __future__ import annotations

import redis

from alloysync.model.events import Event
from alloysync.state import keys, scripts
from alloysync.state.claims import Claims, Outcome, run_keys
from alloysync.state.records import RUN_TTL, RunRecord

WAKE_MARGIN_MS = 120_000  # past its wake time by this much, recovery sends a sleeping step again


class Parking:
    """Parks sleeping steps, bound to a Redis client with `decode_responses=True`."""

    def __init__(self, client: redis.Redis, claims: Claims) -> None:
        self.claims = claims
        self._park = scripts.register(client, "park_step")

    def park(
        self, run: RunRecord, step: int, message_id: str, now: str, wake_ms: int, event: Event
    ) -> Outcome:
        """Park step `step` until `wake_ms`. The outcome's code: 1 parked, -1 the caller no longer
        owns the step, -2 the run was being cancelled and is cancelled now (send the admitted runs)."""
        script_keys = run_keys(run, keys.RUNS_RUNNING, keys.RUNS_PENDING)
        args: list[str | int] = [message_id, step, now, wake_ms + WAKE_MARGIN_MS]
        args += [event.wire(), event.reduced_attributes(), RUN_TTL]
        reply = self.claims.patiently("park step", lambda: self._park(keys=script_keys, args=args))
        return Outcome.parse(reply)
