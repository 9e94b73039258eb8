"""Late first deliveries of cron fires: periodiq's stale-message convention, with the missed-runs policy.

periodiq's middleware skips any message whose `scheduled_at` is older than a delay — including
retries, which silently drops a failing run's retry. This subclass keeps the convention (a fire
carries `scheduled_at`; a stale *first delivery* is skipped) and fixes the rest:
  - only recurring (cron) runs are ever skipped; a run-at job's single run is never dropped;
  - retries (`retries` > 0) and redeliveries of a claimed run are never skipped;
  - "stale" is `ALLOYSYNC_SCHEDULE_STALE_AFTER` seconds late, and what happens then follows the
    job's missed-runs policy, the same one the scheduler applies after downtime:
    `skip` → skipped; `all` → runs if within the window; `once` → one catch-up: a stale fire runs
    if it is the job's newest fire, or the fire an earlier skip deferred to. Skipping designates
    the job's newest fire as that catch-up, and the designation sticks until it has run, so a
    backlog that never clears still lets one run through per backlog, never none.
A skipped fire is recorded (run state `skipped`, an event saying why) before the message is dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import SkipMessage
from periodiq import PeriodiqMiddleware

from alloysync import keys
from alloysync.log import get_logger
from alloysync.metrics import RUNS
from alloysync.outbox import Event, Status, format_time
from alloysync.runs import ACTOR_NAME
from alloysync.runstate import RunRecord, RunState
from alloysync.settings import MissedRunPolicy

logger = get_logger(__name__)


class StaleFireSkipper(PeriodiqMiddleware):  # type: ignore[misc]
    def __init__(self, client: redis.Redis, skip_delay: float) -> None:
        super().__init__(skip_delay=skip_delay)
        self.client = client
        self.state = RunState(client)

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message[Any]) -> None:
        scheduled_text = message.options.get("scheduled_at")
        if message.actor_name != ACTOR_NAME or not scheduled_text or message.options.get("retries", 0) > 0:
            return
        now = datetime.now(UTC)
        scheduled_at = datetime.fromisoformat(str(scheduled_text).replace("Z", "+00:00"))
        lateness = (now - scheduled_at).total_seconds()
        if lateness <= self.skip_delay:
            return
        run_id = str(message.args[0])
        try:
            run = self.state.load(run_id)
        except redis.RedisError:
            return  # cannot decide: let the actor run it (its claim waits for Redis)
        if run is None or not run.recurring or run.fields.get("state") != "queued" or run.fields.get("owner"):
            return
        policy = MissedRunPolicy(run.fields.get("missed_runs", MissedRunPolicy.ONCE.value))
        try:
            if not self._skips(run, policy, lateness):
                return
        except redis.RedisError:
            return  # cannot decide: let the actor run it
        reason = (
            f"Skipped the run due at {run.scheduled_at}: it could only start {lateness:.0f} s late "
            f"(more than ALLOYSYNC_SCHEDULE_STALE_AFTER={self.skip_delay:g} s) "
            f"and the missed-runs policy is {policy.value}"
        )
        event = Event(
            run.item_id,
            "skipped",
            {"status": Status.SCHEDULED, "message": reason},
            run_id=run_id,
            details={"task": " | ".join(run.steps), "outcome": "skipped"},
        )
        if self.state.skip(run, format_time(now), reason, event):
            RUNS.labels(task=" | ".join(run.steps), outcome="skipped").inc()
            logger.info("stale fire skipped", run_id=run_id, lateness=round(lateness, 1), policy=policy.value)
        raise SkipMessage(reason)

    def _skips(self, run: RunRecord, policy: MissedRunPolicy, lateness: float) -> bool:
        """Whether the missed-runs policy drops this late first delivery."""
        if policy is MissedRunPolicy.ALL:
            return lateness > float(run.fields.get("missed_window", "86400"))
        if policy is MissedRunPolicy.SKIP:
            return True
        newest = self.client.hget(keys.LAST_FIRE, run.item_id)
        if run.scheduled_at in (newest, self.client.hget(keys.CATCH_UP, run.item_id)):
            self.client.hdel(keys.CATCH_UP, run.item_id)
            return False
        if newest:
            self.client.hsetnx(keys.CATCH_UP, run.item_id, str(newest))
        return True
