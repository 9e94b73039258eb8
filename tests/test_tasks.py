"""The task registry: registration rules, params checks, pipelines, sync and async calls."""

from __future__ import annotations

import pytest

from alloysync.cli import print_registered_tasks
from alloysync.model.registry import (
    ParamsError,
    TaskDefinitionError,
    TaskModuleError,
    TaskRegistry,
    load_task_modules,
)
from alloysync.settings import Settings


def test_registration_rules() -> None:
    registry = TaskRegistry()

    def work(count: int, note: str = "") -> int:
        return count

    registered = registry.register(work, "team.work", queue="slow", max_retries=2, time_limit=5)
    assert registry.get("team.work") is registered and registry.names() == ["team.work"]
    assert registry.queues() == {"default", "slow"}
    assert registered.parameters_text() == "count: int, note: str = ''"
    registry.register(work, "team.work", queue="slow")  # the same function again is fine (re-import)
    with pytest.raises(TaskDefinitionError, match="registered twice"):
        registry.register(lambda count: count, "team.work")
    for bad in ("work", "Team.Work", "team..work", "team.work-x", "os.system "):
        with pytest.raises(TaskDefinitionError, match="dotted lowercase"):
            registry.register(work, bad)
    with pytest.raises(TaskDefinitionError, match="queue name"):
        registry.register(work, "team.other", queue="Bad Queue")

    def star(*values: int) -> None: ...

    with pytest.raises(TaskDefinitionError, match=r"\*args"):
        registry.register(star, "team.star")


def test_params_are_checked_against_signature_and_types() -> None:
    registry = TaskRegistry()

    def work(count: int, names: list[str] | None = None) -> None: ...

    task = registry.register(work, "team.work")
    task.check_params({"count": 3, "names": ["a"]})
    task.check_params({"count": "3"})  # JSON text numbers coerce like pydantic's lax mode
    with pytest.raises(ParamsError, match="missing a required argument: 'count'"):
        task.check_params({})
    with pytest.raises(ParamsError, match="unexpected keyword argument 'size'"):
        task.check_params({"count": 1, "size": 2})
    with pytest.raises(ParamsError, match=r"parameter names\.0"):
        task.check_params({"count": 1, "names": [{"a": 1}]})
    with pytest.raises(ParamsError, match="cannot follow another step"):
        registry.register(lambda a, b: a, "team.two").check_accepts_input()
    task.check_accepts_input()


def test_sync_and_async_tasks_are_called_in_the_worker_thread() -> None:
    registry = TaskRegistry()

    async def double(value: int) -> int:
        return value * 2

    assert registry.register(double, "team.double").call(value=21) == 42
    assert registry.register(lambda value: value + 1, "team.inc").call(1) == 2


def test_task_modules_load_with_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    registry = load_task_modules(["coinrequest.tasks"])
    assert "coinrequest.compose_price_email" in registry.names()
    with pytest.raises(TaskModuleError, match="cannot import task module 'no_such_module'"):
        load_task_modules(["no_such_module"])
    assert print_registered_tasks(Settings(task_modules=["coinrequest.tasks"])) == 0
    listing = capsys.readouterr().out
    assert "coinrequest.get_btc_prices(currencies: list[str] | None = None)" in listing
    assert "async max_retries=3 time_limit=60s" in listing
    assert print_registered_tasks(Settings(task_modules=["no_such_module"])) == 1


def test_a_task_whose_annotations_cannot_be_resolved_is_refused_at_registration() -> None:
    registry = TaskRegistry()

    def work(count: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        ...

    with pytest.raises(TaskDefinitionError, match=r"'team\.work': its annotations cannot be resolved"):
        registry.register(work, "team.work")
    assert registry.names() == []
