"""Run control in the model (pure: no Redis, no Alloy): per-step Params, the optional attributes of a
job record, the task API's RunContext parameter, RunParams and the Backfill plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alloysync import RunContext
from alloysync.alloy.models import Item
from alloysync.model.job_options import ALL_FEATURES, OverlapPolicy, parse_duration
from alloysync.model.jobs import InvalidJob, JobSpec, read_definition, validate_job
from alloysync.model.params import ParamsProblem, parse_params
from alloysync.model.registry import ParamsError, TaskRegistry, load_task_modules
from alloysync.model.runs import RunKind
from alloysync.model.versions import plan_backfill, plan_request
from alloysync.settings import JobAttributeCodes, Settings

CODES = JobAttributeCodes()
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SETTINGS = Settings(notify_url_allow=["https://hooks.example.org/alloysync/"], backfill_max_runs=48)


@pytest.fixture(scope="module")
def registry() -> TaskRegistry:
    return load_task_modules(["coinrequest.tasks", "tests.support.tasks"])


def validate(registry: TaskRegistry, features: frozenset[str] = ALL_FEATURES, **values: Any) -> Any:
    attributes = {"enabled": True, "task": "tests.record", "params": {"label": "x"}, **values}
    item = Item.model_validate(
        {
            "itemId": "5f898d4790478c0067f863e5",
            "designCode": "designs_alloysyncJobs",
            "attributes": [{"attributeCode": getattr(CODES, k), "value": v} for k, v in attributes.items()],
        }
    )
    return validate_job(read_definition(item, CODES, features), registry, SETTINGS, NOW, features)


def test_each_pipeline_step_gets_its_own_options(registry: TaskRegistry) -> None:
    spec = validate(
        registry,
        task="tests.record | tests.slow | tests.echo",
        params={"steps": [{"label": "a"}, {"seconds": 1}, None]},  # tests.slow's label is the input
    )
    assert isinstance(spec, JobSpec)
    assert spec.params == {"label": "a"} and spec.later_params == ({"seconds": 1}, {})
    # The first-step form is unchanged: later steps get only the previous result.
    plain = validate(registry, task="tests.record | tests.echo", params={"label": "x"})
    assert isinstance(plain, JobSpec) and plain.later_params == ({},)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"steps": [{"label": "a"}]}, '"steps" has 1 entries but Task has 2 steps'),
        ({"steps": [{"label": "a"}, 3]}, "entry 2 (tests.slow) must be an object"),
        ({"steps": [{"label": "a"}, {}]}, "step 2 (tests.slow): tests.slow: missing a required"),
        ({"steps": [{"label": "a"}, {"seconds": "x"}]}, "parameter seconds"),
        ({"steps": [{"label": "a"}, {"seconds": 1, "label": "b"}]}, "previous step's result, not an option"),
        ({"steps": [{"label": "a"}, {"seconds": 1, "ctx": 1}]}, "run's context, not an option"),
    ],
)
def test_bad_step_options_name_the_step_and_the_option(
    registry: TaskRegistry, params: dict[str, Any], fragment: str
) -> None:
    state = validate(registry, task="tests.record | tests.slow", params=params)
    assert isinstance(state, InvalidJob) and state.attribute == CODES.params
    assert fragment in state.message, state.message


def test_a_later_step_that_needs_options_cannot_follow_without_them(registry: TaskRegistry) -> None:
    state = validate(registry, task="tests.record | tests.slow", params={"label": "x"})
    assert isinstance(state, InvalidJob) and state.attribute == CODES.task
    assert "cannot follow another step without options" in state.message and '"steps"' in state.message


def test_the_optional_attributes_are_read_only_where_the_design_has_them(registry: TaskRegistry) -> None:
    spec = validate(
        registry,
        schedule="*/5 * * * *",
        overlap="Queue-One",
        concurrency_key="highways-api",
        notify="ops@example.org, https://hooks.example.org/alloysync/abc",
        notify_on="every-failure",
        max_age="26h",
    )
    assert isinstance(spec, JobSpec)
    control = spec.control
    assert control.overlap == OverlapPolicy.QUEUE_ONE and control.concurrency_key == "highways-api"
    assert control.notify == ("ops@example.org", "https://hooks.example.org/alloysync/abc")
    assert (control.notify_on, control.max_age) == ("every-failure", 26 * 3600)
    assert validate(registry, schedule="@hourly").control.overlap == "skip"  # the default
    off = validate(registry, frozenset(), schedule="@hourly", overlap="nonsense", notify="not an address")
    assert isinstance(off, JobSpec) and off.control.overlap == "" and off.control.notify == ()


@pytest.mark.parametrize(
    ("values", "code", "fragment"),
    [
        ({"overlap": "sometimes"}, CODES.overlap, "skip, allow, queue-one, replace"),
        ({"concurrency_key": "has spaces"}, CODES.concurrency_key, "short name"),
        ({"notify": "https://evil.example.com/x"}, CODES.notify, "not allowed"),
        ({"notify": "someone@"}, CODES.notify, "neither an e-mail address"),
        ({"notify_on": "often"}, CODES.notify_on, "failure, every-failure, always, never"),
        ({"max_age": "soon"}, CODES.max_age, "not a duration"),
        ({"backfill": "2026-11-20T00:00Z"}, CODES.backfill, "FROM..TO"),
        ({"schedule": "", "backfill": "2026-11-20T00:00Z..2026-11-20T02:00Z"}, CODES.backfill, "cron"),
        ({"backfill": "2026-11-20T02:00Z..2026-11-20T00:00Z"}, CODES.backfill, "TO is before FROM"),
        ({"backfill": "2026-11-10T00:00Z..2026-11-20T00:00Z"}, CODES.backfill, "more than 48 fires"),
    ],
)
def test_a_bad_optional_attribute_makes_the_record_invalid(
    registry: TaskRegistry, values: dict[str, Any], code: str, fragment: str
) -> None:
    state = validate(registry, **{"schedule": "0 * * * *", **values})
    assert isinstance(state, InvalidJob) and state.attribute == code
    assert fragment in state.message, state.message


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90m", "26h", "2d", "45s", "30", "1.5h")] == [
        5400,
        93600,
        172800,
        45,
        30,
        5400,
    ]
    assert parse_duration("soon") is None


def test_a_run_context_parameter_is_never_an_option() -> None:
    registry = TaskRegistry()

    def work(ctx: RunContext, count: int) -> None: ...

    def later(items: list[int], ctx: RunContext, limit: int = 3) -> None: ...

    task = registry.register(work, "team.work")
    assert task.context_parameter == "ctx" and "ctx: RunContext" in task.parameters_text()
    task.check_params({"count": 1})
    with pytest.raises(ParamsError, match="run's context"):
        task.check_params({"count": 1, "ctx": {}})
    follower = registry.register(later, "team.later")
    assert follower.input_parameter == "items"
    follower.check_params({"limit": 2}, follows=True)
    assert follower.arguments([1], {"limit": 2}, "CTX", follows=True) == {
        "items": [1],
        "limit": 2,
        "ctx": "CTX",
    }


def test_run_params_are_checked_like_params_and_fail_only_that_request(registry: TaskRegistry) -> None:
    spec = validate(registry)
    assert isinstance(spec, JobSpec)
    good = parse_params({"label": "override"}, spec.steps, registry, SETTINGS, "RunParams")
    plan = plan_request(spec, 1, 4, good)
    assert plan.run is not None and plan.run.params == {"label": "override"}
    assert plan.reset.attributes == {"run_requested": False, "run_params": None}
    with pytest.raises(ParamsProblem, match="RunParams do not fit the first step"):
        parse_params({"nope": 1}, spec.steps, registry, SETTINGS, "RunParams")
    failed = plan_request(spec, 1, 5, None, "RunParams do not fit the first step: ...")
    assert failed.run is None and failed.reset.attributes["message"].startswith("RunRequested not run")


def test_a_backfill_plans_one_run_per_fire_oldest_first_under_the_fires_own_ids(
    registry: TaskRegistry,
) -> None:
    spec = validate(
        registry,
        schedule="0 * * * *",
        timezone="Europe/London",
        backfill="2026-11-20T01:00..2026-11-20T06:00",
    )
    assert isinstance(spec, JobSpec)
    plan = plan_backfill(spec, 3)
    assert plan is not None
    fires = [datetime(2026, 11, 20, hour, tzinfo=UTC) for hour in range(1, 7)]  # London is UTC in November
    assert [run.scheduled_at for run in plan.runs] == fires
    assert plan.runs[0].run_id == f"cron:{spec.item_id}:2026-11-20T01:00:00.000Z"
    assert {run.kind for run in plan.runs} == {RunKind.BACKFILL}
    assert [run.progress for run in plan.runs][:2] == ["backfill 1/6", "backfill 2/6"]
    assert plan.clear.attributes["backfill"] is None and "6 run(s)" in plan.clear.attributes["message"]
    assert all(
        run.scheduled_at is not None and run.scheduled_at < NOW - timedelta(hours=1) for run in plan.runs
    )
