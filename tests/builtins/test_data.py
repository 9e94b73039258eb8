"""data.select, data.filter, data.render (the sandbox and its bounds), data.count, data.threshold."""

from __future__ import annotations

from typing import Any

import pytest

from alloysync.builtins import data
from alloysync.builtins.common import BuiltinError
from alloysync.builtins.templates import BoundedEnvironment, TemplateRefused
from alloysync.local.redis_server import RedisServer
from alloysync.model.outcomes import PipelineEnds
from alloysync.model.registry import ParamsError
from alloysync.settings import Settings
from tests.builtins.conftest import ContextFactory, make_settings
from tests.support.recipes import days_ago

ROWS: list[dict[str, Any]] = [
    {"itemId": "a", "ref": "D-1", "priority": "High", "reported": days_ago(40), "cost": 120},
    {"itemId": "b", "ref": "D-2", "priority": "Low", "reported": days_ago(45), "cost": 30},
    {"itemId": "c", "ref": "D-3", "priority": "Urgent", "reported": days_ago(2), "cost": None},
]


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return make_settings(redis_server, None, builtin_render_max_chars=2000)


async def test_select_and_filter_are_jmespath_with_date_functions(
    settings: Settings, context: ContextFactory
) -> None:
    async with context(settings) as ctx:
        assert await data.select(ROWS, ctx=ctx, expression="[].ref") == ["D-1", "D-2", "D-3"]
        assert await data.select(ROWS, ctx=ctx, expression="{n: length(@), total: sum([].cost)}") == {
            "n": 3,
            "total": 150,
        }
        kept = await data.filter_(ROWS, ctx=ctx, where="priority != 'Low' && age_days(reported) > `30`")
        assert [row["ref"] for row in kept] == ["D-1"]
        assert await data.filter_({"rows": ROWS}, ctx=ctx, where="cost") == ROWS[:2]  # null is false
        assert await data.filter_(None, ctx=ctx, where="cost") == []
        with pytest.raises(BuiltinError, match="takes a list"):
            await data.filter_("text", ctx=ctx, where="cost")


async def test_render_text_and_subject(settings: Settings, context: ContextFactory) -> None:
    template = "ref,priority\n{% for d in input %}{{ [d.ref, d.priority + ', !'] | csv }}\n{% endfor %}"
    async with context(settings) as ctx:
        text = await data.render(ROWS, ctx=ctx, template=template)
        assert text == 'ref,priority\nD-1,"High, !"\nD-2,"Low, !"\nD-3,"Urgent, !"\n'
        mail = await data.render(
            ROWS,
            ctx=ctx,
            template="{{ job.title }}: {{ input[0].reported | date('%Y') }}",
            subject="{{ input | length }}\n defects",
        )
        assert mail == {"subject": "3 defects", "body": "Test job: " + str(ROWS[0]["reported"])[:4]}


@pytest.mark.parametrize(
    ("template", "refusal"),
    [
        ("{{ ''.__class__.__mro__ }}", "off limits"),
        ("{{ input | attr('__class__') }}", "may not use '__class__'"),
        ("{{ cycler.__init__.__globals__ }}", "off limits"),
        ("{{ 'a' * 100000000 }}", "repeats a value"),
        ("{{ 'x'.center(100000000) }}", "numbers used as widths"),
        ("{{ 'x' | indent(100000000) }}", "numbers used as widths"),
        ("{{ '%99999999s' % 1 }}", "width or precision"),
        ("{{ '{:>99999999}'.format(1) }}", "width or precision"),
        ("{{ '%99999999s' | format(1) }}", "width or precision"),
        ("{{ 9 ** 9999999 }}", "to the power"),
        (
            "{% set ns = namespace(x='ab') %}{% for i in range(40) %}"
            "{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
            "with ~",
        ),
        ("{% for i in range(3000) %}x{% endfor %}", "longer than 2000 characters"),
    ],
)
def test_the_sandbox_refuses_escapes_and_unbounded_output(template: str, refusal: str) -> None:
    environment = BoundedEnvironment(2000)
    with pytest.raises((TemplateRefused, ParamsError), match=refusal):
        environment.render_bounded(template, {"input": ROWS}, "template")


def test_a_runtime_escape_fails_with_a_clear_message() -> None:
    # Passes the static check (no `_` name in the template's attributes), refused while rendering.
    environment = BoundedEnvironment(2000)
    with pytest.raises(TemplateRefused) as refused:
        environment.render_bounded("{{ input | attr(name) }}", {"input": "", "name": "__class__"}, "template")
    assert str(refused.value) == (
        "option 'template': the template may not use '__class__' of a str: attributes starting with '_' "
        "and Python's internals are off limits in templates"
    )


async def test_render_errors_name_the_option(settings: Settings, context: ContextFactory) -> None:
    async with context(settings) as ctx:
        with pytest.raises(BuiltinError, match="option 'template': the template failed: UndefinedError"):
            await data.render(ROWS, ctx=ctx, template="{{ input.nothing.deeper }}")
        assert await data.render(ROWS, ctx=ctx, template="[{{ input[0].missing }}]") == "[]"


async def test_count_passes_the_rows_on(settings: Settings, context: ContextFactory) -> None:
    async with context(settings) as ctx:
        assert await data.count(ROWS, ctx=ctx) == {"count": 3, "rows": ROWS, "summary": "3 counted"}
        counted = await data.count(ROWS, ctx=ctx, expression="sum([].cost)")
        assert counted["count"] == 150


async def _threshold(
    settings: Settings, context: ContextFactory, run: str, rows: list[Any], **options: Any
) -> Any:
    async with context(settings, run_id=run, step=1) as ctx:
        try:
            return await data.threshold(rows, ctx=ctx, **options)
        except PipelineEnds as ending:
            return ending


async def test_threshold_goes_on_only_when_the_count_crosses(
    settings: Settings, context: ContextFactory
) -> None:
    first = await _threshold(settings, context, "cron:job-1:1", ROWS, above=2)
    assert (
        isinstance(first, dict)
        and first["count"] == 3
        and first["previous_count"] is None
        and first["rows"] == ROWS
    )
    assert first["summary"] == "3 is above 2"
    again = await _threshold(settings, context, "cron:job-1:1", ROWS, above=2)  # the same run, redelivered
    assert isinstance(again, dict) and again["previous_count"] is None
    still = await _threshold(settings, context, "cron:job-1:2", ROWS, above=2)
    assert isinstance(still, PipelineEnds) and "still past the threshold" in still.result["summary"]
    assert still.result["rows"] == []
    always = await _threshold(settings, context, "cron:job-1:3", ROWS, above=2, when="always")
    assert isinstance(always, dict)
    below = await _threshold(settings, context, "cron:job-1:4", ROWS[:1], above=2)
    assert isinstance(below, PipelineEnds) and below.result["summary"] == "1: not above 2; nothing more to do"
    crossed = await _threshold(settings, context, "cron:job-1:5", ROWS, above=2)
    assert isinstance(crossed, dict) and crossed["previous_count"] == 1
    low = await _threshold(settings, context, "cron:job-1:6", [], below=1)
    assert isinstance(low, dict) and low["summary"] == "0 is below 1"
