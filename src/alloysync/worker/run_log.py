"""Capturing each step's log lines into its run (`alloysync:runlog:{id}`, state/run_logs.py).

One `RunLogCapture` handler sits on the root logger of every worker process. While a step runs, the
records emitted in its thread — `ctx.log`, any stdlib `logging` call, warnings (routed through
logging by `logging.captureWarnings`), and alloysync's own events for the run (claimed by which
worker, retried, interrupted) — are kept for that run, and appended to Redis every FLUSH_EVERY
seconds and when the step ends, so a killed worker loses at most the last second of them. A step
that returned hands its last lines to its finish script instead (`take_current`, worker/actor.py):
the outcome and the log in one round trip; a line logged after that stays in the process log only.

Bounds: each step keeps at most ALLOYSYNC_RUN_LOG_MAX_BYTES of text (a final line says what was
dropped), each line at most LINE_MAX_CHARS, and the run's list the newest
ALLOYSYNC_RUN_LOG_MAX_LINES. Every secret in the settings (the Alloy token, the SMTP password, the
webhook secret, any other `SecretStr`) is replaced by `**********` before a line is kept.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from alloysync.model.times import now_iso
from alloysync.settings import Settings
from alloysync.state.run_logs import RunLogWriter

FLUSH_EVERY = 1.0  # seconds between appends of a running step's new lines
LINE_MAX_CHARS = 2000
TAIL_LINES = 20  # lines kept in memory for a failed run's Message
REDACTED = "**********"
# Context fields every worker line carries; they say nothing about the run's own story.
_QUIET_FIELDS = frozenset(
    {"event", "level", "logger", "timestamp", "process", "run_id", "message_id", "step"}
)


@dataclass
class StepLog:
    """The lines of one step being captured."""

    run_id: str
    step: int
    pending: list[dict[str, Any]] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    kept_bytes: int = 0
    dropped: int = 0


class RunLogCapture(logging.Handler):
    """The root-logger handler that keeps lines for the steps running in this process."""

    def __init__(self, writer: RunLogWriter, settings: Settings) -> None:
        super().__init__(level=logging.DEBUG)
        self.writer = writer
        self.max_bytes = settings.run_log_max_bytes
        self.secrets = sorted(_secret_values(settings), key=len, reverse=True)
        self._steps: dict[int, StepLog] = {}  # thread id → the step it runs
        self._guard = threading.Lock()

    # --- a step's life -------------------------------------------------------------------------

    def begin(self, run_id: str, step: int) -> StepLog:
        """Start keeping the lines logged in this thread for step `step` of `run_id`."""
        step_log = StepLog(run_id, step)
        with self._guard:
            self._steps[threading.get_ident()] = step_log
        return step_log

    def note(self, step_log: StepLog, text: str, level: str = "info") -> None:
        """Add one of alloysync's own lines to a step's log (from any thread)."""
        self._keep(step_log, level, text)

    def end(self, step_log: StepLog) -> None:
        """Stop capturing for the step and append what is left of its lines."""
        with self._guard:
            for thread_id, kept in list(self._steps.items()):
                if kept is step_log:
                    del self._steps[thread_id]
        self._flush_one(step_log)

    def flush_all(self) -> None:
        """Append the new lines of every running step (called every FLUSH_EVERY seconds)."""
        with self._guard:
            running = list(self._steps.values())
        for step_log in running:
            self._flush_one(step_log)

    def current(self) -> StepLog | None:
        """The step being captured in this thread, if any."""
        return self._steps.get(threading.get_ident())

    def take_current(self) -> list[dict[str, Any]]:
        """End the capture of this thread's step without appending: its lines not appended yet are
        returned, for the caller to append with the step's outcome (the finish script). Lines
        logged after this are not kept with the run."""
        step_log = self.current()
        if step_log is None:
            return []
        with self._guard:
            self._steps.pop(threading.get_ident(), None)
        return self._take(step_log)

    def end_current(self) -> None:
        """The message this thread processed is done with: end its step's capture, if any."""
        step_log = self.current()
        if step_log is not None:
            self.end(step_log)

    def last_lines(self) -> list[str]:
        """The last lines of the step being captured in this thread (for a failed run's Message)."""
        step_log = self.current()
        return list(step_log.tail) if step_log is not None else []

    # --- logging.Handler -----------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        step_log = self._steps.get(record.thread or 0)
        if step_log is None:
            return
        try:
            self._keep(step_log, record.levelname.lower(), _text(record))
        except Exception:  # a log line must never break the step
            self.handleError(record)

    # --- internals -------------------------------------------------------------------------------

    def _keep(self, step_log: StepLog, level: str, text: str) -> None:
        text = self._redact(text)[:LINE_MAX_CHARS]
        with self._guard:
            size = len(text.encode())
            if step_log.kept_bytes + size > self.max_bytes:
                step_log.dropped += 1
                return
            step_log.kept_bytes += size
            step_log.pending.append({"at": now_iso(), "level": level, "text": text, "step": step_log.step})
            step_log.tail.append(text)

    def _take(self, step_log: StepLog) -> list[dict[str, Any]]:
        """The step's lines not appended yet (and a note of those dropped over the bound)."""
        with self._guard:
            lines, step_log.pending = step_log.pending, []
            if step_log.dropped:
                note = (
                    f"… {step_log.dropped} more line(s) dropped: the step logged over {self.max_bytes} bytes"
                )
                lines.append({"at": now_iso(), "level": "warning", "text": note, "step": step_log.step})
                step_log.dropped = 0
                step_log.kept_bytes = self.max_bytes  # nothing more fits
        return lines

    def _flush_one(self, step_log: StepLog) -> None:
        lines = self._take(step_log)
        if lines:
            try:
                self.writer.append(step_log.run_id, lines)
            except Exception:  # Redis away: put them back for the next flush
                with self._guard:
                    step_log.pending[:0] = lines

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def _text(record: logging.LogRecord) -> str:
    """A record as one line: structlog events as `event key=value ...` (without the context
    fields every line carries), stdlib records as their message."""
    if isinstance(record.msg, Mapping):
        event: Mapping[str, Any] = record.msg
        facts = " ".join(f"{key}={value}" for key, value in event.items() if key not in _QUIET_FIELDS)
        text = f"{event.get('event', '')} {facts}".strip()
    else:
        text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
    return text


def _secret_values(settings: Settings) -> Iterable[str]:
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        values = value.values() if isinstance(value, Mapping) else [value]
        for candidate in values:
            if isinstance(candidate, SecretStr) and len(candidate.get_secret_value()) >= 4:
                yield candidate.get_secret_value()
