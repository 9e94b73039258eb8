"""`alloysync scheduler`: periodiq's scheduler process, with schedules from the store instead of code.

periodiq provides the process shape we keep: a loop that sleeps on SIGALRM until the next fire and
sends messages carrying `scheduled_at`. What changes:
  - entries come from the schedule store the poller keeps (`alloysync:schedules`), re-read on every
    wake-up, and the process wakes at least at every minute boundary, so a cron edited in Alloy
    takes effect at the first minute boundary after the poll (or webhook) that saw it;
  - fire times come from `alloysync.model.cron` (time zones, DST) instead of periodiq's CronSpec;
  - each fire is a run with the deterministic id `cron:{item}:{time}` created with set-if-absent
    (state/runs.py): two schedulers, a restart within the same minute, or a replayed pass cannot run a
    (job, time) twice;
  - after downtime, missed fires follow the missed-runs policy (model/fires.py).
`SchedulerCore.tick(now)` is one pass at an explicit time, which is what the tests drive.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType

import redis
from periodiq import Scheduler
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from alloysync.broker import build_broker
from alloysync.enqueue import RunQueue
from alloysync.gc_tuning import tune_for_throughput
from alloysync.log import get_logger
from alloysync.metrics import SCHEDULER_FIRES, SCHEDULER_TICK, SCHEDULES, beat
from alloysync.model.events import Event, Status
from alloysync.model.fires import ON_TIME_GRACE, FirePlan, ScheduleEntry, plan_fires
from alloysync.model.jobs import ScheduleKind
from alloysync.model.registry import TaskRegistry
from alloysync.model.runs import RunKind, RunRequest, run_id_for
from alloysync.model.times import format_alloy_datetime, parse_alloy_datetime, utc_now
from alloysync.settings import MissedRunPolicy, Settings, redact_url
from alloysync.state.connections import BLOCK_SECONDS, connect
from alloysync.state.outbox import append_event
from alloysync.state.schedules import FireBook

logger = get_logger(__name__)

RETRY_AFTER_ERROR = 5.0  # seconds before the next pass when Redis could not be reached
SUBMIT_BATCH = 500  # runs created per pipelined batch


@dataclass
class TickReport:
    enqueued: int = 0
    duplicates: int = 0
    skipped: int = 0
    entries: int = 0


class SchedulerCore:
    """Fires due schedule entries at a given time. Synchronous; `client` decodes responses."""

    def __init__(self, settings: Settings, client: redis.Redis, runs: RunQueue) -> None:
        self.settings = settings
        self.client = client
        self.runs = runs
        self.fires = FireBook(client)
        self.entries: list[ScheduleEntry] = []

    def load(self) -> list[ScheduleEntry]:
        entries, unreadable = self.fires.entries()
        for item_id, error in unreadable.items():
            logger.error("unreadable schedule entry; skipping it", item_id=item_id, error=error)
        self.entries = entries
        return entries

    def tick(self, now: datetime) -> TickReport:
        """Fire everything due at `now` (aware).

        Runs are created first (in batches), the jobs' last-fire marks advanced after: a pass that
        dies in between is repeated by the next one, whose runs then die at their ids."""
        report = TickReport()
        entries = self.load()
        report.entries = len(entries)
        last_fires = self.fires.last_fires()
        planned: list[tuple[ScheduleEntry, FirePlan, datetime | None]] = []
        requests: list[RunRequest] = []
        for entry in entries:
            try:
                last = last_fires.get(entry.item_id)
                plan = plan_fires(
                    entry,
                    parse_alloy_datetime(last) if last else None,
                    now,
                    self.settings.missed_runs,
                    self.settings.missed_runs_window,
                )
                if plan.handled_until is None:
                    continue
                following = entry.next_fire(max(now, plan.handled_until))
                fires = [self._request(entry, fire, now, following, len(plan.skipped)) for fire in plan.run]
            except ValueError as error:  # CronError, an unknown zone on this host: skip this entry only
                logger.error(
                    "cannot plan this schedule; skipping it", item_id=entry.item_id, error=str(error)
                )
                continue
            planned.append((entry, plan, following))
            requests += fires
        for start in range(0, len(requests), SUBMIT_BATCH):
            batch = requests[start : start + SUBMIT_BATCH]
            for request, created in zip(batch, self.runs.submit_many(batch), strict=True):
                report.enqueued += created
                report.duplicates += not created
                logger.debug("fired" if created else "already fired", run_id=request.run_id)
        SCHEDULER_FIRES.labels(outcome="enqueued").inc(report.enqueued)
        SCHEDULER_FIRES.labels(outcome="duplicate").inc(report.duplicates)
        marks = [
            (entry.item_id, plan.handled_until) for entry, plan, _following in planned if plan.handled_until
        ]
        advanced = self.fires.advance(marks)
        for (entry, plan, following), moved in zip(planned, advanced, strict=True):
            if plan.skipped:
                report.skipped += len(plan.skipped)
                if moved:  # only the scheduler whose pass moved the mark reports the skipped fires
                    SCHEDULER_FIRES.labels(outcome="missed").inc(len(plan.skipped))
                    if not plan.run:
                        self._report_skipped(entry, plan.skipped, following)
        SCHEDULES.set(sum(1 for entry in entries if _active(entry, last_fires.get(entry.item_id))))
        SCHEDULER_TICK.set(time.time())
        beat("scheduler")
        return report

    def _request(
        self, entry: ScheduleEntry, fire: datetime, now: datetime, following: datetime | None, skipped: int
    ) -> RunRequest:
        kind = RunKind.CRON if entry.kind is ScheduleKind.CRON else RunKind.AT
        late = now - fire > ON_TIME_GRACE
        due = "catch-up for the run due at" if late else "scheduled for"
        reason = f"Queued: {due} {format_alloy_datetime(fire)}"
        if skipped:
            reason += f"; {skipped} older missed run(s) skipped by the missed-runs policy"
        return RunRequest(
            run_id=run_id_for(kind, entry.item_id, scheduled_at=fire),
            item_id=entry.item_id,
            kind=kind,
            steps=entry.steps,
            params=entry.params,
            source="scheduler",
            reason=reason,
            scheduled_at=fire,
            next_run=following,
            recurring=kind is RunKind.CRON,
            missed_runs=entry.missed_runs or self.settings.missed_runs,
            missed_window=entry.missed_window or self.settings.missed_runs_window,
            version=entry.version,
            later_params=entry.later_params,
            overlap=entry.overlap if kind is RunKind.CRON else "",  # Overlap governs cron fires
            concurrency_key=entry.concurrency_key,
            title=entry.title,
        )

    def _report_skipped(
        self, entry: ScheduleEntry, skipped: list[datetime], following: datetime | None
    ) -> None:
        policy: MissedRunPolicy = entry.missed_runs or self.settings.missed_runs
        span = (
            format_alloy_datetime(skipped[0])
            if len(skipped) == 1
            else f"{format_alloy_datetime(skipped[0])} to {format_alloy_datetime(skipped[-1])}"
        )
        message = f"Skipped {len(skipped)} missed run(s) due {span} (missed-runs policy: {policy.value})"
        event = Event(
            entry.item_id,
            "missed",
            {
                "status": Status.SCHEDULED,
                "message": message,
                "next_run": format_alloy_datetime(following) if following else None,
            },
        )
        append_event(self.client, event)
        logger.info("missed runs skipped", item_id=entry.item_id, count=len(skipped), policy=policy.value)

    def next_wake(self, now: datetime) -> datetime:
        """The next minute boundary, or an earlier fire of a loaded entry (a run-at time)."""
        wake = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for entry in self.entries:
            if entry.kind is ScheduleKind.AT:
                fire = entry.next_fire(now)
                if fire is not None and fire < wake:
                    wake = fire
        return wake


def _active(entry: ScheduleEntry, last_fire: str | None) -> bool:
    """A cron entry always; a run-at entry until its time has been fired."""
    if entry.kind is ScheduleKind.CRON or entry.run_at is None:
        return True
    return last_fire is None or parse_alloy_datetime(last_fire) < entry.run_at


class StoreScheduler(Scheduler):  # type: ignore[misc]
    """periodiq's Scheduler loop (a queue woken by SIGALRM) driving a SchedulerCore.

    Besides its alarm, the loop is woken by the poller's notification that a schedule changed, so
    a new run-at time or a new cron is taken into account at once. Wake-ups that queue up while a
    pass runs are served by the next single pass, and a stop request always wins.
    """

    def __init__(self, core: SchedulerCore, clock: Callable[[], datetime]) -> None:
        super().__init__(actors=[])
        self.core = core
        self.clock = clock
        signal.signal(signal.SIGALRM, self.signal_handler)

    def listen_for_changes(self) -> threading.Thread:
        thread = threading.Thread(target=self._listen, name="schedule-changes", daemon=True)
        thread.start()
        return thread

    def _listen(self) -> None:
        while True:
            try:
                with self.core.fires.changes() as changes:
                    while True:
                        if changes.get_message(timeout=BLOCK_SECONDS) is not None:
                            self.alarm_q.put_nowait(True)
            except RedisError as error:
                logger.warning("lost the schedule-change subscription; resubscribing", error=str(error))
                time.sleep(RETRY_AFTER_ERROR)

    def loop(self) -> None:
        while True:
            keep_going = self.alarm_q.get(block=True)
            while not self.alarm_q.empty():
                keep_going = self.alarm_q.get_nowait() and keep_going
            if not keep_going:
                return
            self.schedule()

    def schedule(self) -> None:
        now = self.clock()
        try:
            report = self.core.tick(now)
            if report.enqueued or report.skipped:
                logger.info("scheduler pass", **report.__dict__)
            delay = (self.core.next_wake(now) - self.clock()).total_seconds()
        except RedisError as error:
            logger.warning("cannot reach Redis; retrying", error=str(error), retry_in=RETRY_AFTER_ERROR)
            delay = RETRY_AFTER_ERROR
        if delay <= 0:
            self.alarm_q.put_nowait(True)
            return
        # periodiq sleeps the fraction of a second and alarm()s the whole seconds; a real-time
        # interval timer does both without blocking the loop.
        signal.setitimer(signal.ITIMER_REAL, delay)

    def stop(self, _signum: int = 0, _frame: FrameType | None = None) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.alarm_q.put_nowait(False)


def run_scheduler(settings: Settings, registry: TaskRegistry) -> int:
    client = connect(settings.effective_redis_url)
    broker = build_broker(settings, queues=registry.queues())
    core = SchedulerCore(settings, client, RunQueue(client, broker, registry, settings))
    if settings.scheduler_metrics_port:
        start_http_server(settings.scheduler_metrics_port, addr=settings.scheduler_metrics_host)
    scheduler = StoreScheduler(core, utc_now)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, scheduler.stop)
    logger.info(
        "scheduler started",
        redis=redact_url(settings.effective_redis_url),
        metrics=f"http://{settings.scheduler_metrics_host}:{settings.scheduler_metrics_port}/metrics",
        missed_runs=settings.missed_runs.value,
    )
    scheduler.listen_for_changes()
    scheduler.schedule()
    tune_for_throughput()
    scheduler.loop()
    logger.info("scheduler stopped")
    broker.close()
    return 0
