"""The worker's own Dramatiq middleware: log context per message, the stale-fire skipper, and the
heartbeat that makes a dead worker's messages come back promptly.

`LogContext` binds `run_id`, `step` and `message_id` (structlog contextvars) before each message is
processed and clears them after it was processed or skipped, so every log line about a message
names it without anyone passing it by hand.

`StaleFireSkipper` keeps periodiq's convention (a fire carries `scheduled_at`; a stale *first
delivery* is skipped) and fixes what periodiq's own middleware gets wrong for us:
  - only recurring (cron) runs are ever skipped; a run-at job's single run is never dropped;
  - retries (`retries` > 0) and redeliveries of a claimed run are never skipped;
  - "stale" is `ALLOYSYNC_SCHEDULE_STALE_AFTER` seconds late, and what happens then follows the
    job's missed-runs policy, the same one the scheduler applies after downtime:
    `skip` → skipped; `all` → runs if within the window; `once` → one catch-up: a stale fire runs
    if it is the job's newest fire, or the fire an earlier skip deferred to. Skipping designates
    the job's newest fire as that catch-up, and the designation sticks until it has run, so a
    backlog that never clears still lets one run through per backlog, never none.
A skipped fire is recorded (run phase `skipped`, an event saying why) before the message is dropped.

`WorkerHeartbeat` runs `AlloysyncBroker.maintain` on a timer in every worker process (see
broker.py for why) and registers the worker as alive. A Redis outage must not look like dead
workers: a worker that saw Redis fail only heartbeats, without maintenance, for one heartbeat
timeout after it returns, so that every live worker has heartbeated again by then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware, SkipMessage
from periodiq import PeriodiqMiddleware

from alloysync.broker import AlloysyncBroker
from alloysync.enqueue import ACTOR_NAME
from alloysync.identity import process_name
from alloysync.log import get_logger
from alloysync.metrics import RUNS, beat
from alloysync.model.events import Event, Status
from alloysync.model.runs import RunKind
from alloysync.model.times import format_alloy_datetime, parse_alloy_datetime, utc_now
from alloysync.settings import MissedRunPolicy
from alloysync.state.claims import Claims
from alloysync.state.queue_stats import WorkerRegistry
from alloysync.state.records import RunRecord
from alloysync.state.schedules import FireBook
from alloysync.worker.execution import CancelWatcher
from alloysync.worker.run_log import RunLogCapture

logger = get_logger(__name__)

LOG_CONTEXT = ("run_id", "step", "message_id")
FORGET_WORKER_AFTER = 10  # heartbeat timeouts after which a silent worker leaves the registry


class LogContext(Middleware):
    """Binds the message's run, step and id to every log line logged while it is processed."""

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        structlog.contextvars.clear_contextvars()
        context: dict[str, Any] = {"message_id": message.message_id}
        if message.actor_name == ACTOR_NAME and len(message.args) == 2:
            context |= {"run_id": str(message.args[0]), "step": int(message.args[1])}
        structlog.contextvars.bind_contextvars(**context)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        structlog.contextvars.unbind_contextvars(*LOG_CONTEXT)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        structlog.contextvars.unbind_contextvars(*LOG_CONTEXT)


class StaleFireSkipper(PeriodiqMiddleware):  # type: ignore[misc]
    def __init__(
        self,
        client: redis.Redis,
        skip_delay: float,
        send_admitted: Callable[[Sequence[str], int], None] | None = None,
    ) -> None:
        super().__init__(skip_delay=skip_delay)
        self.claims = Claims(client)
        self.fires = FireBook(client)
        self.send_admitted = send_admitted  # sends the runs a skipped run's end admitted

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message[Any]) -> None:
        scheduled_text = message.options.get("scheduled_at")
        if message.actor_name != ACTOR_NAME or not scheduled_text or message.options.get("retries", 0) > 0:
            return
        now = utc_now()
        lateness = (now - parse_alloy_datetime(str(scheduled_text))).total_seconds()
        if lateness <= self.skip_delay:
            return
        run_id = str(message.args[0])
        try:
            run = self.claims.load(run_id)
        except redis.RedisError:
            return  # cannot decide: let the actor run it (its claim waits for Redis)
        if run is None or not run.recurring or run.kind != RunKind.CRON.value or not run.unclaimed:
            return  # backfill runs carry their old scheduled time on purpose: never stale
        try:
            if not self._skips(run, lateness):
                return
        except redis.RedisError:
            return  # cannot decide: let the actor run it
        reason = (
            f"Skipped the run due at {run.scheduled_at}: it could only start {lateness:.0f} s late "
            f"(more than ALLOYSYNC_SCHEDULE_STALE_AFTER={self.skip_delay:g} s) "
            f"and the missed-runs policy is {run.missed_runs.value}"
        )
        event = Event(
            run.item_id,
            "skipped",
            {"status": Status.SCHEDULED, "message": reason},
            run_id=run_id,
            details={"task": run.task_label, "outcome": "skipped"},
        )
        outcome = self.claims.skip_and_admit(run, format_alloy_datetime(now), reason, event)
        if outcome.code:
            RUNS.labels(task=run.task_label, outcome="skipped").inc()
            logger.info("stale fire skipped", lateness=round(lateness, 1), policy=run.missed_runs.value)
            if outcome.admitted and self.send_admitted is not None:
                self.send_admitted(outcome.admitted, outcome.score)
        raise SkipMessage(reason)

    def _skips(self, run: RunRecord, lateness: float) -> bool:
        """Whether the missed-runs policy drops this late first delivery."""
        if run.missed_runs is MissedRunPolicy.ALL:
            return lateness > run.missed_window
        if run.missed_runs is MissedRunPolicy.SKIP:
            return True
        newest = self.fires.last_fire(run.item_id)
        if run.scheduled_at in (newest, self.fires.catch_up(run.item_id)):
            self.fires.clear_catch_up(run.item_id)
            return False
        if newest:
            self.fires.defer_catch_up(run.item_id, newest)
        return True


class WorkerHeartbeat(Middleware):
    """Runs `maintain()` on a timer in each worker process and registers the worker as alive."""

    def __init__(self, interval: float, heartbeat_timeout: float) -> None:
        self.interval = interval
        self.heartbeat_timeout = heartbeat_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redis_was_down = False
        self._hold_maintenance_until = 0.0

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        assert isinstance(broker, AlloysyncBroker)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(broker,), name="alloysync-heartbeat", daemon=True
        )
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        assert isinstance(broker, AlloysyncBroker)
        try:
            WorkerRegistry(broker.client).leave(broker.broker_id)
        except redis.RedisError as error:
            # The registry forgets a silent worker by itself (after FORGET_WORKER_AFTER timeouts).
            logger.warning("cannot reach Redis to unregister the stopping worker", error=str(error))

    def _run(self, broker: AlloysyncBroker) -> None:
        while not self._stop.is_set():
            self.pass_once(broker)
            self._stop.wait(self.interval)

    def pass_once(self, broker: AlloysyncBroker) -> None:
        """One pass: heartbeat (and maintenance unless Redis has only just come back, see the module
        docstring), and register this worker as alive."""
        try:
            self._beat(broker)
            # Heartbeats come from this thread now: fetches and acks need not record them.
            broker.beats_on_its_own = True
            now = time.time()
            forget_before = now - FORGET_WORKER_AFTER * self.heartbeat_timeout
            WorkerRegistry(broker.client).beat(broker.broker_id, process_name(), now, forget_before)
            beat("worker")
        except Exception as error:  # Redis down: keep trying, the worker itself will reconnect
            self._redis_was_down = True
            logger.warning("worker heartbeat failed", error=str(error))

    def _beat(self, broker: AlloysyncBroker) -> None:
        now = time.monotonic()
        if self._redis_was_down:
            broker.heartbeat()
            self._redis_was_down = False
            self._hold_maintenance_until = now + self.heartbeat_timeout + self.interval
            logger.info("Redis is back: heartbeats only until every worker had time to heartbeat")
        elif now < self._hold_maintenance_until:
            broker.heartbeat()
        else:
            broker.maintain()


class CancelWatching(Middleware):
    """Runs the `CancelWatcher` thread in each worker process (worker/execution.py)."""

    def __init__(self, client: redis.Redis, every_second: Callable[[], None] | None = None) -> None:
        self.watcher = CancelWatcher(Claims(client), every_second=every_second)

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.watcher.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.watcher.stop()


class RunLogFlushing(Middleware):
    """Ends the log capture of the step a message ran (worker/run_log.py), however it ended."""

    def __init__(self, capture: RunLogCapture) -> None:
        self.capture = capture

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self.capture.end_current()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.capture.end_current()
