"""The job model: records → JobSpec / DisabledJob / InvalidJob with a message that says what to fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alloysync.alloy.models import Item
from alloysync.model.jobs import DisabledJob, InvalidJob, JobSpec, ScheduleKind, read_definition, validate_job
from alloysync.model.registry import TaskRegistry, load_task_modules
from alloysync.settings import JobAttributeCodes, MissedRunPolicy, Settings

CODES = JobAttributeCodes()
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> TaskRegistry:
    return load_task_modules(["coinrequest.tasks", "tests.support.tasks"])


def item(**values: Any) -> Item:
    attributes = {"enabled": True, "task": "tests.record", "params": {"label": "x"}, **values}
    return Item.model_validate(
        {
            "itemId": "5f898d4790478c0067f863e5",
            "designCode": "designs_alloysyncJobs",
            "attributes": [{"attributeCode": getattr(CODES, k), "value": v} for k, v in attributes.items()],
            "signature": "61d5d55cccda3c01687b6b71",
            "lastEditDate": "2026-11-21T11:59:00.000Z",
            "icon": "icon-resource-house",
        }
    )


def validate(registry: TaskRegistry, **values: Any) -> Any:
    return validate_job(read_definition(item(**values), CODES), registry, Settings(), NOW)


def test_a_valid_once_now_job(registry: TaskRegistry) -> None:
    spec = validate(registry, title="t", task=" tests.record ", params={"label": "a", "sleep": 1})
    assert isinstance(spec, JobSpec)
    assert spec.steps == ("tests.record",) and spec.params == {"label": "a", "sleep": 1}
    assert spec.schedule.kind is ScheduleKind.NOW and spec.schedule.timezone == "UTC"


def test_pipelines_cron_run_at_and_policies(registry: TaskRegistry) -> None:
    spec = validate(
        registry,
        task="coinrequest.get_btc_prices|coinrequest.process_prices | coinrequest.compose_price_email",
        params={"currencies": ["USD"]},
        schedule="*/15 9-17 * * mon-fri",
        timezone="Europe/London",
        missed_runs="all 6h",
    )
    assert isinstance(spec, JobSpec) and len(spec.steps) == 3
    assert spec.schedule.kind is ScheduleKind.CRON and spec.schedule.zone.key == "Europe/London"
    assert (spec.schedule.missed_runs, spec.schedule.missed_window) == (MissedRunPolicy.ALL, 6 * 3600)
    at = validate(registry, schedule="2026-11-21T13:30:00+01:00")
    assert isinstance(at, JobSpec) and at.schedule.run_at == datetime(2026, 11, 21, 12, 30, tzinfo=UTC)
    local = validate(registry, schedule="2027-07-02 09:30", timezone="Europe/London")
    assert isinstance(local, JobSpec) and local.schedule.run_at == datetime(2027, 7, 2, 8, 30, tzinfo=UTC)
    recent = validate(registry, schedule=(NOW - timedelta(hours=2)).isoformat())
    assert isinstance(recent, JobSpec)  # past, but within the horizon: it runs at once


def test_params_may_be_json_text_or_empty(registry: TaskRegistry) -> None:
    spec = validate(registry, task="coinrequest.get_btc_prices", params='{"currencies": ["EUR"]}')
    assert isinstance(spec, JobSpec) and spec.params == {"currencies": ["EUR"]}
    assert isinstance(validate(registry, task="coinrequest.get_btc_prices", params=None), JobSpec)


@pytest.mark.parametrize("enabled", [False, None, "true", 1])
def test_anything_but_true_is_disabled(registry: TaskRegistry, enabled: Any) -> None:
    assert isinstance(validate(registry, enabled=enabled, task="nope.nothing"), DisabledJob)


@pytest.mark.parametrize(
    ("values", "code", "fragment"),
    [
        ({"task": ""}, CODES.task, "is empty"),
        ({"task": 42}, CODES.task, "is empty"),
        ({"task": "tests.nope"}, CODES.task, "unknown task 'tests.nope'"),
        ({"task": "__import__('os').system('x')"}, CODES.task, "unknown task"),
        ({"task": "tests.echo | tests.flaky"}, CODES.task, "cannot follow another step"),
        ({"task": " | ".join(["tests.echo"] * 11)}, CODES.task, "at most 10"),
        ({"params": "not json"}, CODES.params, "is not JSON"),
        ({"params": "[1]"}, CODES.params, "not a list"),
        ({"params": True}, CODES.params, "not a boolean"),
        ({"params": {"label": "x", "colour": "red"}}, CODES.params, "unexpected keyword argument 'colour'"),
        ({"params": {}}, CODES.params, "missing a required argument: 'label'"),
        ({"params": {"label": ["x"]}}, CODES.params, "parameter label"),
        ({"params": {"label": "x" * 70_000}}, CODES.params, "ALLOYSYNC_PARAMS_MAX_BYTES"),
        ({"schedule": "0 25 * * *"}, CODES.schedule, 'hour field "25"'),
        ({"schedule": "0 0 30 2 *"}, CODES.schedule, "day-of-month"),
        ({"schedule": "@reboot"}, CODES.schedule, "@reboot"),
        ({"schedule": 5}, CODES.schedule, "must be text"),
        ({"schedule": "next tuesday"}, CODES.schedule, "expected 5 fields"),
        ({"schedule": "2026-02-30T10:00:00Z"}, CODES.schedule, "neither an ISO-8601"),
        ({"schedule": "2026-11-19T12:00:00Z"}, CODES.schedule, "2 days in the past"),
        ({"schedule": "@daily", "timezone": "Europe/Lodnon"}, CODES.timezone, "Europe/London"),
        ({"timezone": 3}, CODES.timezone, "must be text"),
        ({"missed_runs": "maybe"}, CODES.missed_runs, "skip, once, all"),
        ({"missed_runs": "once 6h"}, CODES.missed_runs, "skip, once, all"),
    ],
)
def test_invalid_records_say_what_to_fix(
    registry: TaskRegistry, values: dict[str, Any], code: str, fragment: str
) -> None:
    state = validate(registry, **values)
    assert isinstance(state, InvalidJob), state
    assert state.attribute == code
    assert code in state.message and fragment in state.message, state.message


def test_the_fingerprint_covers_the_definition_only() -> None:
    base = read_definition(item(title="a"), CODES).fingerprint
    assert read_definition(item(title="renamed"), CODES).fingerprint == base
    assert (
        read_definition(item(title="a", status="Succeeded", message="m", run_count=3), CODES).fingerprint
        == base
    )
    assert read_definition(item(title="a", run_requested=True), CODES).fingerprint == base
    for change in (
        {"params": {"label": "y"}},
        {"schedule": "@daily"},
        {"enabled": False},
        {"timezone": "UTC"},
    ):
        assert read_definition(item(title="a", **change), CODES).fingerprint != base


def test_read_definition_reads_requests_and_counts() -> None:
    definition = read_definition(item(run_requested=True, run_count=7.0), CODES)
    assert definition.run_requested is True and definition.run_count == 7
    assert read_definition(item(run_count="7"), CODES).run_count is None
