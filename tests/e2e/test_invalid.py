"""Each kind of invalid record becomes Invalid with a message naming the attribute; nothing runs and
the daemon keeps serving."""

from __future__ import annotations

from typing import Any

from tests.support.system import CODES, System

CASES: list[tuple[str, dict[str, Any], str, list[str]]] = [
    # (title, attributes, attribute code named, message fragments)
    ("unknown task", {"task": "nope.missing"}, CODES.task, ["unknown task 'nope.missing'", "tests.record"]),
    ("import path", {"task": "os.system"}, CODES.task, ["unknown task 'os.system'", "Only registered tasks"]),
    ("shell command", {"task": "rm -rf /tmp/x"}, CODES.task, ["unknown task 'rm -rf /tmp/x'"]),
    ("empty step", {"task": "tests.record ||", "params": {"label": "x"}}, CODES.task, ["empty step"]),
    (
        "bad pipeline",
        {"task": "tests.echo | tests.flaky", "params": {"value": 1}},
        CODES.task,
        ["cannot follow"],
    ),
    ("bad cron field", {"schedule": "61 * * * *"}, CODES.schedule, ['minute field "61"', "0-59"]),
    ("cron field count", {"schedule": "* * *"}, CODES.schedule, ["expected 5 fields", "got 3"]),
    ("garbage schedule", {"schedule": "tomorrow-ish"}, CODES.schedule, ["neither an ISO-8601 date-time"]),
    ("bad datetime", {"schedule": "2026-13-45T99:00"}, CODES.schedule, ["neither an ISO-8601 date-time"]),
    ("stale run-at", {"schedule": "2020-01-01T00:00:00Z"}, CODES.schedule, ["in the past", "RUN_AT_HORIZON"]),
    ("bad zone", {"schedule": "0 9 * * *", "timezone": "Mars/Olympus"}, CODES.timezone, ["Mars/Olympus"]),
    ("params list", {"params": [1, 2]}, CODES.params, ["must be a JSON object", "not a list"]),
    ("params misfit", {"params": {"lable": "x"}}, CODES.params, ["do not fit", "label"]),
    ("params type", {"params": {"label": "x", "sleep": "slow"}}, CODES.params, ["parameter sleep", "number"]),
    ("params oversize", {"params": {"label": "x" * 70_000}}, CODES.params, ["bytes; the limit is 65536"]),
    (
        "bad policy",
        {"schedule": "@hourly", "missed_runs": "sometimes"},
        CODES.missed_runs,
        ["skip, once, all"],
    ),
]


def test_invalid_records_are_marked_and_the_daemon_carries_on(system: System) -> None:
    system.start_serve()
    system.start_worker()
    items = {}
    for title, attributes, _code, _fragments in CASES:
        values = {"task": "tests.record", "params": {"label": title}, **attributes}
        items[title] = system.create_job(title, values.pop("task"), params=values.pop("params"), **values)
    for title, _attributes, code, fragments in CASES:
        job = system.wait_for_status(items[title], "Invalid", timeout=30)
        assert code in job["message"], (title, job["message"])
        for fragment in fragments:
            assert fragment in job["message"], (title, job["message"])
    assert system.executions() == []

    healthy = system.create_job("healthy", "tests.record", params={"label": "healthy"})
    system.wait_for_status(healthy, "Succeeded")
    assert [entry["label"] for entry in system.executions()] == ["healthy"]

    # Fixing an invalid record makes it run.
    system.edit_job(items["unknown task"], task="tests.record")
    system.wait_for_status(items["unknown task"], "Succeeded")
    assert sorted(entry["label"] for entry in system.executions()) == ["healthy", "unknown task"]
