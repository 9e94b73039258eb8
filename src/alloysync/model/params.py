"""Params of a job (and of one requested run): which options each step of the pipeline gets.

Two forms, both JSON objects:
  - keyword arguments of the first step, e.g. `{"currencies": ["USD"]}` — later steps get only the
    previous step's result (the form every job had before per-step options);
  - per step, for a pipeline: `{"steps": [{...first step...}, {...second...}, null, ...]}`, one
    entry (an object, or null for none) per step of the Task, in order. Step 2 onwards is called
    with the previous result plus its own options.
A Params object whose only key is `steps` holding a list is read as the per-step form; a first step
that takes an option named `steps` must therefore use the per-step form.

Everything is checked before anything runs — JSON shape, size, each step's options against that
task's signature, types and own check (allow-lists) — and a problem names the step and the option.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from alloysync.model.registry import ParamsError, TaskRegistry
from alloysync.settings import Settings

STEPS_KEY = "steps"


class ParamsProblem(ValueError):
    """Params cannot run; the message says which step and option and how to fix it. `step` is the
    0-based step at fault (None: Params as a whole); `per_step` whether the per-step form was used."""

    def __init__(self, message: str, step: int | None = None, per_step: bool = False) -> None:
        super().__init__(message)
        self.step = step
        self.per_step = per_step


@dataclass(frozen=True)
class StepParams:
    """The options of each step: `first` for step 1, `later` for steps 2.. (possibly empty dicts)."""

    first: dict[str, Any]
    later: tuple[dict[str, Any], ...] = ()

    def for_step(self, step: int) -> dict[str, Any]:
        if step == 0:
            return self.first
        return self.later[step - 1] if step - 1 < len(self.later) else {}


def parse_params(
    value: Any, steps: tuple[str, ...], registry: TaskRegistry, settings: Settings, where: str
) -> StepParams:
    """Read and check `value` (a Params or RunParams attribute) for a job of `steps`.

    `where` names the attribute in messages, e.g. "Params (attributes_alloysyncJobsParams)"."""
    params = _as_object(value, where)
    size = len(json.dumps(params, separators=(",", ":")).encode())
    if size > settings.params_max_bytes:
        raise ParamsProblem(
            f"{where} is {size} bytes; the limit is {settings.params_max_bytes} "
            "(ALLOYSYNC_PARAMS_MAX_BYTES): pass references (ids, URLs) instead of data"
        )
    per_step = set(params) == {STEPS_KEY} and isinstance(params[STEPS_KEY], list) and len(steps) > 1
    options = _per_step(params[STEPS_KEY], steps, where) if per_step else [params] + [{} for _ in steps[1:]]
    # In the first-step form, a later step that cannot run on the previous result alone is the
    # Task's problem, not Params': check those first.
    order = list(range(len(steps))) if per_step else [*range(1, len(steps)), 0]
    for position in order:
        name, step_options = steps[position], options[position]
        registered = registry.get(name)
        assert registered is not None, "steps are checked against the registry first"
        try:
            registered.check_params(step_options, follows=position > 0, settings=settings)
        except ParamsError as error:
            which = "the first step" if len(steps) == 1 else f"step {position + 1} ({name})"
            raise ParamsProblem(f"{where} do not fit {which}: {error}", position, per_step) from None
    return StepParams(options[0], tuple(options[1:]))


def _as_object(value: Any, where: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    params = value
    if isinstance(value, str):
        try:
            params = json.loads(value)
        except ValueError:
            raise ParamsProblem(
                f'{where} is not JSON: write a JSON object such as {{"currencies": ["USD"]}}'
            ) from None
    if not isinstance(params, dict):
        raise ParamsProblem(
            f'{where} must be a JSON object of keyword arguments such as {{"currencies": ["USD"]}}, '
            f"not {json_kind(params)}"
        )
    return params


def _per_step(entries: list[Any], steps: tuple[str, ...], where: str) -> list[dict[str, Any]]:
    if len(entries) != len(steps):
        raise ParamsProblem(
            f'{where}: "steps" has {len(entries)} entries but Task has {len(steps)} steps '
            f"({' | '.join(steps)}): give one object (or null) per step, in order"
        )
    options = []
    for position, entry in enumerate(entries):
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise ParamsProblem(
                f'{where}: "steps" entry {position + 1} ({steps[position]}) must be an object of '
                f"options or null, not {json_kind(entry)}"
            )
        options.append(entry)
    return options


def json_kind(value: Any) -> str:
    """How to name a JSON value's kind in a message."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return type(value).__name__
