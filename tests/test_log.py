"""Logging: the worker's log context per message, and one style of event names across src/."""

from __future__ import annotations

import ast
import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import dramatiq
import structlog

from alloysync.enqueue import ACTOR_NAME
from alloysync.worker.middleware import LogContext

SRC = Path(__file__).resolve().parents[1] / "src" / "alloysync"
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
IDENTIFIER_STYLE = re.compile(r"[a-z0-9]+(?:[._][a-z0-9]+)+")


def capturing_logger() -> tuple[Any, list[dict[str, Any]]]:
    """A logger that merges the context variables, as alloysync's configured ones do."""
    lines: list[dict[str, Any]] = []

    def keep(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
        lines.append(dict(event))
        raise structlog.DropEvent

    return structlog.wrap_logger(None, processors=[structlog.contextvars.merge_contextvars, keep]), lines


def message(step: int) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name="default", actor_name=ACTOR_NAME, args=("now:item:v1", step), kwargs={}, options={}
    )


def test_the_run_step_and_message_are_bound_while_a_message_is_processed() -> None:
    middleware, broker = LogContext(), dramatiq.get_broker()
    log, lines = capturing_logger()
    processed, skipped = message(1), message(0)
    middleware.before_process_message(broker, processed)  # type: ignore[arg-type]
    log.info("step started")
    middleware.after_process_message(broker, processed, exception=RuntimeError("boom"))  # type: ignore[arg-type]
    log.info("between messages")
    middleware.before_process_message(broker, skipped)  # type: ignore[arg-type]
    log.info("stale fire skipped")
    middleware.after_skip_message(broker, skipped)  # type: ignore[arg-type]
    log.info("idle")
    context = [{k: line.get(k) for k in ("event", "run_id", "step", "message_id")} for line in lines]
    assert context == [
        {"event": "step started", "run_id": "now:item:v1", "step": 1, "message_id": processed.message_id},
        {"event": "between messages", "run_id": None, "step": None, "message_id": None},
        {"event": "stale fire skipped", "run_id": "now:item:v1", "step": 0, "message_id": skipped.message_id},
        {"event": "idle", "run_id": None, "step": None, "message_id": None},
    ]


def logged_events() -> list[tuple[str, int, str]]:
    """(file, line, event) of every log call in src/ whose event is a literal."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = node.func.value
            name = receiver.id if isinstance(receiver, ast.Name) else getattr(receiver, "attr", "")
            if node.func.attr in LEVELS and name in ("log", "logger") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.append((str(path.relative_to(SRC)), node.lineno, first.value))
    return found


def test_every_log_event_is_a_plain_phrase() -> None:
    events = logged_events()
    assert len(events) > 50  # the scan finds the log calls
    odd = [
        (f, n, e)
        for f, n, e in events
        if IDENTIFIER_STYLE.fullmatch(e) or e != e.strip() or not e[:1].isalpha()
    ]
    assert odd == [], "log events are lowercase phrases ('run enqueued'), not identifiers ('run.enqueued')"
