"""The run queue's state (synchronous): creating run records, `runs:pending`, `runs:running` and
the job's run history.

Guarantee (store → queue): **exactly-once run record**. `create` runs one script per run that,
only if `run:{id}` does not exist yet, creates the record, files the id in `runs:pending`, appends
the `Queued` event and pushes the id onto the job's history; a caller that finds the record
already there creates nothing (the idempotency key). `runs:pending` holds runs whose message may
not be on a queue yet; `runs:running` holds running runs by the deadline of their current step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import redis

from alloysync.model.events import Event
from alloysync.model.runs import RunKind, RunRequest
from alloysync.model.times import now_iso
from alloysync.state import keys, scripts
from alloysync.state.lease import LeaseLost
from alloysync.state.records import RUN_TTL, RunRecord


@dataclass(frozen=True)
class NewRun:
    """A run to create: the request, its record's fields, and its event for each way creating it
    can go (admitted: Queued; waiting for the job's running run; dropped by Overlap)."""

    request: RunRequest
    record: dict[str, str]
    queued: Event
    waiting: Event
    skipped: Event
    dropped: Event
    replaced_reason: str = "Cancelled: replaced by a newer run (Overlap replace)"


class Created(IntEnum):
    """What creating a run did (create_run.lua)."""

    EXISTED = 0  # the run existed already (the idempotency key)
    ADMITTED = 1  # queued: its first step is to be sent
    WAITING = 2  # it waits for the job's running run (Overlap queue-one / replace, backfill)
    DROPPED = 3  # Overlap skip (or queue-one with a run waiting already) recorded it as skipped


@dataclass(frozen=True)
class Creation:
    """The answer for one run: what happened, and runs admitted because Overlap replace cancelled
    queued runs of the job (their first step is to be sent too)."""

    created: Created
    admitted: tuple[str, ...] = ()


class RunStore:
    """`client` must decode responses."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._create_run = scripts.register(client, "create_run")
        self._forget_pending = scripts.register(client, "forget_pending")
        self._reap = scripts.register(client, "reap_run")

    def create(
        self, runs: Sequence[NewRun], now_ms: int, history_len: int, lease: str = ""
    ) -> list[Creation]:
        """Create the runs that do not exist yet (one pipelined batch), applying each run's Overlap
        policy; for each, what happened. With `lease` (the poller's), nothing is created unless it
        still holds the lease."""
        with self.client.pipeline(transaction=False) as pipe:
            for run in runs:
                run_keys = [
                    keys.run(run.request.run_id),
                    keys.RUNS_PENDING,
                    keys.OUTBOX,
                    keys.job_runs(run.request.item_id),
                    keys.LEASE,
                ]
                record_json = _json(run.record)
                args: list[str | int] = [
                    run.request.run_id,
                    now_ms,
                    history_len,
                    record_json,
                    run.queued.wire(),
                    lease,
                    run.request.overlap,
                    "backfill" if run.request.kind is RunKind.BACKFILL else "",
                    run.waiting.wire(),
                    run.skipped.wire(),
                    run.dropped.wire(),
                    now_iso(),
                    run.replaced_reason,
                    RUN_TTL,
                ]
                self._create_run(keys=run_keys, args=args, client=pipe)
            replies = pipe.execute()
        results = [
            [int(value) if index == 0 else str(value) for index, value in enumerate(reply)]
            for reply in replies
        ]
        if any(int(result[0]) < 0 for result in results):
            raise LeaseLost("the poller lease moved to another serve replica")
        return [Creation(Created(int(result[0])), tuple(str(v) for v in result[1:])) for result in results]

    def forget_pending(self, entries: Sequence[tuple[str, int | float]]) -> None:
        """Take runs out of runs:pending (their step was sent), each unless re-filed since its
        score was read."""
        with self.client.pipeline(transaction=False) as pipe:
            for run_id, score in entries:
                self._forget_pending(keys=[keys.RUNS_PENDING], args=[run_id, _score_text(score)], client=pipe)
            pipe.execute()

    def pending_before(self, cutoff_ms: int) -> list[tuple[str, float]]:
        """Runs filed in runs:pending before `cutoff_ms`, with their scores."""
        entries: list[tuple[str, float]] = self.client.zrangebyscore(  # type: ignore[assignment]
            keys.RUNS_PENDING, "-inf", cutoff_ms, withscores=True
        )
        return entries

    def overdue(self, now_ms: int) -> list[tuple[str, float]]:
        """Running runs whose step deadline is before `now_ms`, with their deadlines."""
        entries: list[tuple[str, float]] = self.client.zrangebyscore(  # type: ignore[assignment]
            keys.RUNS_RUNNING, "-inf", now_ms, withscores=True
        )
        return entries

    def reap(self, run_id: str, deadline: float) -> bool:
        """Put an overdue run back in line (queued, pending); False if it moved on meanwhile."""
        reap_keys = [keys.run(run_id), keys.RUNS_RUNNING, keys.RUNS_PENDING]
        return bool(self._reap(keys=reap_keys, args=[run_id, _score_text(deadline), 0]))

    def load(self, run_id: str) -> RunRecord | None:
        fields: dict[str, str] = self.client.hgetall(keys.run(run_id))  # type: ignore[assignment]
        return RunRecord.from_hash(fields) if fields else None


def _json(fields: dict[str, str]) -> str:
    return json.dumps(fields, separators=(",", ":"))


def _score_text(score: float) -> str:
    """A zset score as Redis prints it (integral millisecond scores print without a fraction)."""
    return str(int(score)) if float(score).is_integer() else repr(score)
