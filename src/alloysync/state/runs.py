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

import redis

from alloysync.model.events import Event
from alloysync.model.runs import RunRequest
from alloysync.state import keys, scripts
from alloysync.state.lease import LeaseLost
from alloysync.state.records import RunRecord, new_run_hash


@dataclass(frozen=True)
class NewRun:
    """A run to create: the request, its record's fields and its Queued event."""

    request: RunRequest
    record: dict[str, str]
    queued: Event


class RunStore:
    """`client` must decode responses."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._create_run = scripts.register(client, "create_run")
        self._forget_pending = scripts.register(client, "forget_pending")
        self._reap = scripts.register(client, "reap_run")

    def create(self, runs: Sequence[NewRun], now_ms: int, history_len: int, lease: str = "") -> list[bool]:
        """Create the runs that do not exist yet (one pipelined batch); for each, whether it was
        created. With `lease` (the poller's), nothing is created unless it still holds the lease."""
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
                ]
                self._create_run(keys=run_keys, args=args, client=pipe)
            results = [int(result) for result in pipe.execute()]
        if any(result < 0 for result in results):
            raise LeaseLost("the poller lease moved to another serve replica")
        return [bool(result) for result in results]

    @staticmethod
    def new_run(request: RunRequest, queued: Event) -> NewRun:
        return NewRun(request, new_run_hash(request), queued)

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
