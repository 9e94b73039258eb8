"""The run queue's state (synchronous): creating run records, `runs:pending`, `runs:running` and
the job's run history.

Guarantee (store → queue): **exactly-once run record, and exactly-once first message for the run
its creator admits**. `create` runs one script per batch of runs that, for each run, only if
`run:{id}` does not exist yet, creates the record, files its first step's Dramatiq message on its
queue (when the run is admitted at once), appends the `Queued` event and pushes the id onto the
job's history; a caller that finds the record already there creates nothing (the idempotency key).
Record and message are one atomic step, so no crash can leave one without the other.
`runs:pending` holds the runs admitted later (their turn came when another run ended) and the
pipelines between steps: runs whose message may not be on a queue yet. `runs:running` holds
running runs by the deadline of their current step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import redis

from alloysync.model.events import Event
from alloysync.model.json_text import compact_json
from alloysync.model.runs import RunKind, RunRequest
from alloysync.model.times import now_iso
from alloysync.state import keys, scripts
from alloysync.state.lease import fenced_batch
from alloysync.state.records import RUN_TTL, RunRecord


@dataclass(frozen=True)
class FirstMessage:
    """The Dramatiq message of a run's first step, as its queue files it: the queue's list and
    message hash (`{namespace}:{queue}`, `{namespace}:{queue}.msgs`), its storage id and body."""

    queue_key: str
    messages_key: str
    storage_id: str
    body: bytes


@dataclass(frozen=True)
class NewRun:
    """A run to create: the request, its record's fields, its first message, and its event for each
    way creating it can go (admitted: Queued; waiting for the job's running run; dropped by
    Overlap skip or queue-one; None where its policy can never go that way)."""

    request: RunRequest
    record: dict[str, str]
    queued: Event
    first_message: FirstMessage
    waiting: Event | None = None
    skipped: Event | None = None
    dropped: Event | None = None
    replaced_reason: str = "Cancelled: replaced by a newer run (Overlap replace)"


CREATE_BATCH = 100  # runs per create_run.lua call (each holds Redis for about a millisecond)


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
        """Create the runs that do not exist yet, applying each run's Overlap policy, in order,
        and file the first message of each run admitted; for each, what happened. One
        create_run.lua call per CREATE_BATCH runs, all in one pipelined round trip. With `lease`
        (the poller's), nothing is created unless it still holds the lease."""
        calls: list[scripts.ScriptCall] = []
        for start in range(0, len(runs), CREATE_BATCH):
            batch = runs[start : start + CREATE_BATCH]
            run_keys = [keys.OUTBOX, keys.LEASE]
            args: list[str | int | bytes] = [lease, now_ms, history_len, now_iso(), RUN_TTL]
            for run in batch:
                request, message = run.request, run.first_message
                run_keys += [
                    keys.run(request.run_id),
                    keys.job_runs(request.item_id),
                    message.queue_key,
                    message.messages_key,
                ]
                backfill = request.kind is RunKind.BACKFILL
                args += [
                    request.run_id,
                    compact_json(run.record),
                    run.queued.wire(),
                    request.overlap,
                    "backfill" if backfill else "",
                    run.waiting.wire() if run.waiting is not None else "",
                    run.skipped.wire() if run.skipped is not None else "",
                    run.dropped.wire() if run.dropped is not None else "",
                    run.replaced_reason,
                    message.storage_id,
                    message.body,
                ]
            calls.append((run_keys, args))
        batches = scripts.call_each(self._create_run, calls)
        replies: list[list[Any]] = [reply for batch in batches for reply in fenced_batch(batch)]
        return [
            Creation(Created(int(reply[0])), tuple(str(value) for value in reply[1:])) for reply in replies
        ]

    def forget_pending(self, entries: Sequence[tuple[str, int | float]]) -> None:
        """Take runs out of runs:pending (their step was sent), each unless re-filed since its
        score was read: one forget_pending.lua call per CREATE_BATCH runs, one round trip."""
        calls: list[scripts.ScriptCall] = [
            (
                [keys.RUNS_PENDING],
                [
                    text
                    for run_id, score in entries[start : start + CREATE_BATCH]
                    for text in (run_id, _score_text(score))
                ],
            )
            for start in range(0, len(entries), CREATE_BATCH)
        ]
        scripts.call_each(self._forget_pending, calls)

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


def _score_text(score: float) -> str:
    """A zset score as Redis prints it (integral millisecond scores print without a fraction)."""
    return str(int(score)) if float(score).is_integer() else repr(score)
