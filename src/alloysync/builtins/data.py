"""Built-in tasks that shape data between steps: `data.select`, `data.filter`, `data.render`,
`data.count` and `data.threshold`.

`data.select` and `data.filter` are JMESPath (the `jmespath` library) over the previous result,
with three functions for Alloy's ISO date-times: `age_days(date)`, `epoch(date)` and `now()`
(e.g. `age_days(attributes_defectsReported) > \\`30\\``). `data.render` is a Jinja2 template in a
sandbox (builtins/templates.py). `data.threshold` ends the pipeline, successfully, unless a count
crossed a threshold since the job's previous run — the "e-mail me when" check.

Nothing here reads files, imports code or evaluates Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from alloysync.builtins.common import (
    ROWS_KEY,
    BuiltinError,
    builtin_memory,
    compile_jmespath,
    search,
    settings_of,
    truthy,
)
from alloysync.builtins.templates import BoundedEnvironment, template_variables
from alloysync.model.context import RunContext
from alloysync.model.outcomes import PipelineEnds
from alloysync.model.registry import OptionsCheck, ParamsError, task
from alloysync.settings import Settings

_F = TypeVar("_F", bound=Callable[..., Any])


def _data_task(name: str, check: OptionsCheck, example: Mapping[str, Any]) -> Callable[[_F], _F]:
    """Register a data task; they all compute over the previous result alone, with no retries and
    a one-minute time limit."""
    return task(name, max_retries=0, time_limit=60, check=check, example=example)


# --- data.select / data.filter ---------------------------------------------------------------


def _check_jmespath(option: str) -> OptionsCheck:
    """The options check of a task whose option `option` is a (required) JMESPath expression."""

    def check(options: Mapping[str, Any], settings: Settings) -> None:
        compile_jmespath(options.get(option), option)

    return check


@_data_task(
    "data.select", _check_jmespath("expression"), example={"expression": "[].{ref: ref, status: status}"}
)
async def select(previous: Any = None, *, ctx: RunContext, expression: str) -> Any:
    """The JMESPath `expression` evaluated over the previous result (any JSON value)."""
    result = search(compile_jmespath(expression, "expression"), previous, "expression")
    ctx.log.info("data.select: %s", _describe(result))
    return result


@_data_task(
    "data.filter",
    _check_jmespath("where"),
    example={"where": "priority != 'Low' && age_days(reported) > `30`"},
)
async def filter_(previous: Any = None, *, ctx: RunContext, where: str) -> list[Any]:
    """Keep the entries of the previous list for which the JMESPath condition `where` is true.

    A list, or an object's `rows`; JMESPath's truth: not false, null or empty."""
    entries = previous.get(ROWS_KEY) if isinstance(previous, dict) else previous
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise BuiltinError("data.filter takes a list (or an object with a 'rows' list) as its input")
    condition = compile_jmespath(where, "where")
    kept = [entry for entry in entries if truthy(search(condition, entry, "where"))]
    ctx.log.info("data.filter kept %d of %d entries", len(kept), len(entries))
    return kept


# --- data.render -----------------------------------------------------------------------------


def _check_render(options: Mapping[str, Any], settings: Settings) -> None:
    environment = BoundedEnvironment(settings.builtin_render_max_chars)
    environment.compile_checked(options.get("template"), "template")
    if options.get("subject") is not None:
        environment.compile_checked(options["subject"], "subject")


@_data_task(
    "data.render",
    _check_render,
    example={
        "subject": "{{ input | length }} defects escalated",
        "template": "{% for d in input %}{{ d.ref }}  {{ d.reported | date('%d %b') }}\n{% endfor %}",
    },
)
async def render(
    previous: Any = None, *, ctx: RunContext, template: str, subject: str | None = None
) -> str | dict[str, str]:
    """Render a sandboxed Jinja template over the previous result (`input`, `job`, `now`).

    Returns the text, or {"subject", "body"} when a `subject` template is given too (what
    mail.send takes)."""
    settings = settings_of(ctx)
    environment = BoundedEnvironment(settings.builtin_render_max_chars)
    variables = template_variables(previous, ctx)
    body = environment.render_bounded(template, variables, "template")
    ctx.log.info("data.render rendered %d characters", len(body))
    if subject is None:
        return body
    title = environment.render_bounded(subject, variables, "subject").strip()
    return {"subject": " ".join(title.split()), "body": body}


# --- data.count / data.threshold -------------------------------------------------------------


def _count(previous: Any, expression: str | None) -> float:
    value = previous
    if expression is not None:
        value = search(compile_jmespath(expression, "expression"), previous, "expression")
    elif isinstance(previous, dict) and isinstance(previous.get(ROWS_KEY), list):
        value = previous[ROWS_KEY]
    if isinstance(value, list | dict | str):
        return len(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise BuiltinError("nothing to count: the input (or the expression's value) is no list and no number")


def _rows(previous: Any) -> Any:
    if isinstance(previous, dict) and ROWS_KEY in previous:
        return previous[ROWS_KEY]
    return previous if isinstance(previous, list) else []


def _check_count(options: Mapping[str, Any], settings: Settings) -> None:
    if options.get("expression") is not None:
        compile_jmespath(options["expression"], "expression")


@_data_task("data.count", _check_count, example={})
async def count(previous: Any = None, *, ctx: RunContext, expression: str | None = None) -> dict[str, Any]:
    """Count the previous list (or take a JMESPath `expression`'s number); pass the rows on.

    Returns {"count", "rows", "summary"}."""
    total = _count(previous, expression)
    ctx.log.info("data.count: %g", total)
    return {"count": total, ROWS_KEY: _rows(previous), "summary": f"{total:g} counted"}


def _check_threshold(options: Mapping[str, Any], settings: Settings) -> None:
    _check_count(options, settings)
    above, below = options.get("above"), options.get("below")
    if above is None and below is None:
        raise ParamsError("data.threshold needs 'above' or 'below': the threshold to watch")
    if above is not None and below is not None and float(below) <= float(above):
        raise ParamsError("option 'below' must be greater than 'above' when both are given")


@_data_task("data.threshold", _check_threshold, example={"above": 50, "when": "crossing"})
async def threshold(
    previous: Any = None,
    *,
    ctx: RunContext,
    above: float | None = None,
    below: float | None = None,
    expression: str | None = None,
    when: Literal["crossing", "always"] = "crossing",
) -> dict[str, Any]:
    """Go on only when a count crossed `above` or `below`; otherwise end the run, succeeded.

    The count is data.count's. With `when` "crossing" (the default) only the first run past the
    threshold goes on: the job's previous run must have been on the other side (or there was none).

    Passes on {"count", "previous_count", "threshold", "rows", "summary"}."""
    settings = settings_of(ctx)
    total = _count(previous, expression)
    async with builtin_memory(settings) as memory:
        name = f"threshold:{ctx.step}"
        last = await memory.job_value(ctx.item_id, name) or {}
        # A step that runs again in the same run compares with what the run compared with.
        before = last.get("previous") if last.get("run_id") == ctx.run_id else last.get("count")
        await memory.set_job_value(
            ctx.item_id, name, {"run_id": ctx.run_id, "count": total, "previous": before}
        )
    past = _past(total, above, below)
    was_past = before is not None and _past(before, above, below)
    sides = [f"above {above:g}" if above is not None else "", f"below {below:g}" if below is not None else ""]
    limit = " or ".join(side for side in sides if side)
    side = sides[0] if above is not None and total > above else sides[1]
    result = {"count": total, "previous_count": before, "threshold": limit, ROWS_KEY: _rows(previous)}
    if past and (when == "always" or not was_past):
        ctx.log.info("data.threshold: %g is %s (previous run: %s): going on", total, side, before)
        return {**result, "summary": f"{total:g} is {side}"}
    why = "still past the threshold, as at the previous run" if past else f"not {limit}"
    ctx.log.info("data.threshold: %g is %s; the run ends here", total, why)
    raise PipelineEnds({**result, ROWS_KEY: [], "summary": f"{total:g}: {why}; nothing more to do"})


def _past(count: float, above: float | None, below: float | None) -> bool:
    return (above is not None and count > above) or (below is not None and count < below)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"an object of {len(value)} keys"
    return "a " + type(value).__name__
