"""The jobs pages as a person sees them: the Jinja2 environment of `serve/templates/`, and what the
templates draw — a job's outcome strip, its duration chart, times and durations as text.

Templates are rendered with autoescaping on, so every value that came from Alloy, a task or a log
is text, never markup. Pages refresh themselves with a plain `<meta http-equiv="refresh">` (no
JavaScript needed). Times are rendered as exact UTC (`<time datetime=… title=…>`); a few lines of
inline script (`templates/times.js`) rewrite them in the viewer's zone and as relative text
("3 min ago", "in 2 h"), the exact UTC staying on hover. The duration chart is an SVG drawn here,
server-side: no JavaScript library, nothing loaded from elsewhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

from alloysync.model.times import format_alloy_datetime, parse_alloy_datetime, utc_now

REFRESH_SECONDS = 5
STRIP_LENGTH = 20  # outcomes shown per job on the jobs page
CHART_RUNS = 50  # runs drawn in a job's duration chart (the newest)
LOG_LINES_SHOWN = 500  # log lines shown on a run page (the newest)
RESULT_CHARS_SHOWN = 4000  # characters of one step's result shown on a run page
ENDED_STATES = ("succeeded", "failed", "skipped", "cancelled")


def environment_options() -> dict[str, Any]:
    """How the pages' Jinja2 environment is made (autoescape on; an undefined name is an error)."""
    return {
        "loader": jinja2.PackageLoader("alloysync.serve", "templates"),
        "autoescape": True,
        "undefined": jinja2.StrictUndefined,
        "trim_blocks": True,
        "lstrip_blocks": True,
    }


def _add_helpers(env: jinja2.Environment) -> jinja2.Environment:
    env.filters["duration"] = duration_text
    env.globals["moment"] = moment
    return env


def setup(app: web.Application) -> None:
    """Make the templates available to `aiohttp_jinja2.render_template` in `app`."""
    _add_helpers(aiohttp_jinja2.setup(app, **environment_options()))


def environment() -> jinja2.Environment:
    """The same environment outside an app (to render a template directly)."""
    return _add_helpers(jinja2.Environment(**environment_options()))  # noqa: S701 - autoescape is on


# --- times and durations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """A time as the pages show it: `iso` exact UTC (Alloy's DateTime text), `fallback` readable UTC."""

    iso: str
    fallback: str


def moment(text: str | None) -> Moment | None:
    """The `Moment` of Alloy DateTime text; None for empty or unreadable text."""
    if not text:
        return None
    try:
        parsed = parse_alloy_datetime(text)
    except ValueError:
        return None
    return Moment(format_alloy_datetime(parsed), f"{parsed:%Y-%m-%d %H:%M:%S} UTC")


def duration_text(seconds: float | None) -> str:
    """`2.5 s`, `3.2 min`, `1.5 h`; '' for no duration."""
    if seconds is None:
        return ""
    value = float(seconds)
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def job_href(item_id: str) -> str:
    return "/jobs/" + quote(item_id, safe="")


def run_href(item_id: str, run_id: str) -> str:
    return f"{job_href(item_id)}/runs/{quote(run_id, safe=':')}"


def _run_time(run: dict[str, Any]) -> str:
    """When a run happened, for its tooltip and the chart's axis: started, else scheduled, else created."""
    return str(run.get("started") or run.get("scheduled_at") or run.get("created") or "")


def _run_tip(run: dict[str, Any]) -> str:
    """A run's tooltip: id, state, when (Alloy's exact UTC text), duration, the error's first line."""
    parts = [run.get("state") or "unknown", _run_time(run), duration_text(run.get("duration"))]
    tip = f"{run['run_id']}\n" + " · ".join(part for part in parts if part)
    error = str(run.get("error") or "").strip()
    if error:
        first_line = error.splitlines()[0]
        tip += "\n" + (first_line if len(first_line) <= 160 else first_line[:159] + "…")
    return tip


# --- the outcome strip (jobs page) ---------------------------------------------------------------


@dataclass(frozen=True)
class StripCell:
    """One slot of a job's outcome strip: a run's state, its page and its tooltip."""

    state: str
    href: str
    tip: str


EMPTY_CELL = StripCell("", "", "")  # a slot without a run (the job has fewer runs than slots)


def outcome_strip(
    item_id: str, runs: Sequence[dict[str, Any]], length: int = STRIP_LENGTH
) -> list[StripCell]:
    """The job's newest `length` runs (summaries, newest first) as strip cells, oldest on the left,
    newest on the right; empty slots pad the left so that every strip lines up."""
    newest = list(runs[:length])
    cells = [
        StripCell(str(run.get("state") or "unknown"), run_href(item_id, run["run_id"]), _run_tip(run))
        for run in reversed(newest)
    ]
    return [EMPTY_CELL] * (length - len(cells)) + cells


# --- the duration chart (job page) ---------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    state: str
    href: str
    tip: str
    failed: bool


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class AxisTime:
    x: float
    anchor: str  # SVG text-anchor
    at: Moment


CHART_WIDTH = 720
CHART_HEIGHT = 190
PLOT_AREA = (58.0, 22.0, CHART_WIDTH - 12.0, CHART_HEIGHT - 30.0)  # left, top, right, bottom


@dataclass(frozen=True)
class DurationChart:
    """A job's bars, ticks and axis times. The frame is the same for every job: the SVG's `width`
    and `height`, the plot area between `left`, `top`, `right` and `bottom`."""

    bars: list[Bar]
    ticks: list[Tick]
    times: list[AxisTime]
    failed: int  # how many bars are failed runs

    width: ClassVar[int] = CHART_WIDTH
    height: ClassVar[int] = CHART_HEIGHT
    left: ClassVar[float] = PLOT_AREA[0]
    top: ClassVar[float] = PLOT_AREA[1]
    right: ClassVar[float] = PLOT_AREA[2]
    bottom: ClassVar[float] = PLOT_AREA[3]


CHART_SLOTS = 20  # at least this many bar slots, so that a few runs do not make fat bars
STUB_HEIGHT = 3.0  # a run without a duration (queued, skipped, ...): a stub on the baseline
MIN_BAR_HEIGHT = 2.0


def duration_chart(
    item_id: str, runs: Sequence[dict[str, Any]], now: datetime | None = None, limit: int = CHART_RUNS
) -> DurationChart | None:
    """Bars of the durations of the job's newest `limit` runs (summaries, newest first), oldest on
    the left; a running run's bar is its time so far. None without runs."""
    if not runs:
        return None
    now = now or utc_now()
    chosen = list(reversed(runs[:limit]))
    seconds = [_drawn_seconds(run, now) for run in chosen]
    top_value = nice_ceiling(max((value for value in seconds if value is not None), default=0.0) or 1.0)
    left, top, right, bottom = PLOT_AREA
    slots = max(len(chosen), CHART_SLOTS)
    slot = (right - left) / slots
    bar_width = round(max(2.0, min(slot * 0.7, 28.0)), 2)
    first_slot = slots - len(chosen)  # newest at the right edge, like the strip
    bars: list[Bar] = []
    for index, (run, value) in enumerate(zip(chosen, seconds, strict=True)):
        height = STUB_HEIGHT if value is None else max(MIN_BAR_HEIGHT, (bottom - top) * value / top_value)
        x = left + (first_slot + index) * slot + (slot - bar_width) / 2
        state = str(run.get("state") or "unknown")
        bars.append(
            Bar(
                x=round(x, 2),
                y=round(bottom - height, 2),
                width=bar_width,
                height=round(height, 2),
                state=state,
                href=run_href(item_id, run["run_id"]),
                tip=_run_tip(run),
                failed=state == "failed",
            )
        )
    ticks = [
        Tick(round(bottom - (bottom - top) * fraction, 2), axis_label(top_value * fraction, top_value))
        for fraction in (0.0, 0.5, 1.0)
    ]
    return DurationChart(bars, ticks, _axis_times(chosen, bars), failed=sum(1 for bar in bars if bar.failed))


def _drawn_seconds(run: dict[str, Any], now: datetime) -> float | None:
    if run.get("duration") is not None:
        return float(run["duration"])
    started = moment(str(run.get("started") or ""))
    if run.get("state") == "running" and started is not None:
        return max(0.0, (now - parse_alloy_datetime(started.iso)).total_seconds())
    return None


def _axis_times(runs: list[dict[str, Any]], bars: list[Bar]) -> list[AxisTime]:
    """When the oldest and the newest drawn runs happened, under their bars."""
    times: list[AxisTime] = []
    for run, bar, anchor in ((runs[0], bars[0], "start"), (runs[-1], bars[-1], "end")):
        at = moment(_run_time(run))
        if at is not None and (not times or len(runs) > 1):
            x = bar.x if anchor == "start" else bar.x + bar.width
            times.append(AxisTime(round(x, 2), anchor, at))
    if len(times) == 2 and times[1].x - times[0].x < 200:  # too close to be read apart
        times = times[1:]
    return times


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value` (> 0)."""
    exponent = math.floor(math.log10(value))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = factor * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return float(f"{candidate:.6g}")
    return 10.0 ** (exponent + 1)  # pragma: no cover - 10 always fits


def axis_label(value: float, top_value: float) -> str:
    """A tick label in the unit that suits the axis's top value."""
    for unit, size, limit in (("s", 1.0, 120.0), ("min", 60.0, 7200.0), ("h", 3600.0, math.inf)):
        if top_value < limit:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g} s"  # pragma: no cover - the last limit is infinite


# --- the run page --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    step: int
    task: str
    text: str  # the result as indented JSON, cut to RESULT_CHARS_SHOWN


def step_results(run: dict[str, Any]) -> list[StepResult]:
    shown: list[StepResult] = []
    for entry in run.get("step_results", []):
        text = json.dumps(entry["result"], indent=2, ensure_ascii=False, default=str)
        if len(text) > RESULT_CHARS_SHOWN:
            text = text[:RESULT_CHARS_SHOWN] + f"\n… ({len(text) - RESULT_CHARS_SHOWN} more characters)"
        shown.append(StepResult(int(entry["step"]), str(entry.get("task") or ""), text))
    return shown


def log_lines(run: dict[str, Any]) -> tuple[list[dict[str, str]], int]:
    """The run's newest LOG_LINES_SHOWN log lines, and how many older ones are not shown."""
    lines = [
        {name: str(line.get(name, "")) for name in ("at", "level", "text")}
        for line in run.get("log") or []
        if isinstance(line, dict)
    ]
    hidden = max(0, len(lines) - LOG_LINES_SHOWN)
    return lines[hidden:], hidden
