"""Built-in tasks for Alloy items: `alloy.query`, `alloy.get`, `alloy.update`, `alloy.create`.

Every call goes through `ctx.alloy`, so it takes its slot from the deployment's shared budgets
(the poller, the reporter and every worker together stay under the API key's limits: no 429s).
Items come out as rows (builtins/common.py). Editing is limited to the designs (or interfaces) in
ALLOYSYNC_BUILTIN_ALLOY_DESIGNS, checked when the record is read (it is Invalid otherwise) and again
for every item at run time; the jobs design itself is never edited.

`alloy.update` sends only the attributes it was told to set, with the item's signature; on a
signature mismatch (someone edited the item meanwhile) it re-reads the item and sends the same
attributes again, so a user's concurrent edit of any other attribute stays. It is idempotent per
run: each item it edited is remembered under the run and step (state/builtin_memory.py), so a
redelivered step skips what it already did; an item that already holds the values is not written.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

from jmespath.parser import ParsedResult

from alloysync.alloy import aqs
from alloysync.alloy.client import AlloyClient
from alloysync.alloy.errors import AlloyError
from alloysync.builtins.common import (
    BuiltinError,
    attribute_names,
    builtin_memory,
    check_design_allowed,
    check_item_count,
    compile_jmespath,
    item_row,
    rows_of,
    search,
    settings_of,
)
from alloysync.builtins.where import check_raw_filter, compile_where
from alloysync.model.context import RunContext
from alloysync.model.registry import ParamsError, task
from alloysync.model.times import format_alloy_datetime, utc_now
from alloysync.settings import Settings

# --- alloy.query -----------------------------------------------------------------------------


def _check_query(options: Mapping[str, Any], settings: Settings) -> None:
    design = options.get("design")
    if not isinstance(design, str) or not design:
        raise ParamsError("option 'design' must be the design (or interface) code to query")
    if options.get("where") is not None:
        compile_where(options["where"], utc_now())
    if options.get("aqs") is not None:
        check_raw_filter(options["aqs"])
    attribute_names(options.get("attributes"))
    _check_limit(options.get("limit"), settings)


def _check_limit(limit: Any, settings: Settings) -> None:
    if limit is not None and not 1 <= int(limit) <= settings.builtin_max_items:
        raise ParamsError(
            f"option 'limit' must be between 1 and {settings.builtin_max_items} (ALLOYSYNC_BUILTIN_MAX_ITEMS)"
        )


@task(
    "alloy.query",
    max_retries=3,
    time_limit=1800,
    check=_check_query,
    example={
        "design": "designs_defects",
        "where": {"attributes_defectsStatus": "Open", "attributes_defectsReported": {"before": "now-30d"}},
        "attributes": {"ref": "attributes_defectsReference", "status": "attributes_defectsStatus"},
        "limit": 5000,
    },
)
async def query(
    previous: Any = None,
    *,
    ctx: RunContext,
    design: str,
    where: dict[str, Any] | None = None,
    aqs: dict[str, Any] | None = None,
    attributes: list[str] | dict[str, str] | None = None,
    collection: str = "Live",
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Items of a design matching a filter (the `where` shorthand and/or a raw AQS node), as rows.

    Pages through Alloy (every page takes a slot of the shared query budget) until `limit` items
    (default and ceiling: ALLOYSYNC_BUILTIN_MAX_ITEMS). `attributes`: a list of codes, or
    {name: code} to rename them in the rows; default every attribute under its code.
    """
    settings = settings_of(ctx)
    _check_query(
        {"design": design, "where": where, "aqs": aqs, "attributes": attributes, "limit": limit}, settings
    )
    names = attribute_names(attributes)
    filters = compile_where(where, utc_now()) if where is not None else []
    if aqs is not None:
        filters.append(check_raw_filter(aqs))
    selection = sorted(set(names.values())) if names else ["All"]
    node = _query_node(design, filters, collection, selection)
    cap = limit or settings.builtin_max_items
    rows: list[dict[str, Any]] = []
    pages = 0
    async with aclosing(ctx.alloy.query_pages(node)) as paging:
        async for page in paging:
            pages += 1
            rows.extend(item_row(item, names) for item in page.items[: cap - len(rows)])
            if len(rows) >= cap:
                ctx.log.warning("alloy.query stopped at its limit of %d items; more items may match", cap)
                break
    ctx.log.info("alloy.query read %d items of %s in %d pages", len(rows), design, pages)
    return rows


def _query_node(design: str, filters: list[aqs.Node], collection: str, selection: list[str]) -> aqs.Node:
    return aqs.query(design, *filters, collection=collection, attributes=selection)


# --- alloy.get -------------------------------------------------------------------------------


def _check_get(options: Mapping[str, Any], settings: Settings) -> None:
    ids = options.get("ids")
    if ids is not None:
        if not all(isinstance(item_id, str) and item_id for item_id in ids):
            raise ParamsError("option 'ids' must be a list of item ids")
        check_item_count(len(ids), settings, "alloy.get")
    attribute_names(options.get("attributes"))


@task(
    "alloy.get",
    max_retries=3,
    time_limit=1800,
    check=_check_get,
    example={"ids": ["6571b4d7a3f0c2b1e8d90001"], "attributes": {"status": "attributes_jobsStatus"}},
)
async def get(
    previous: Any = None,
    *,
    ctx: RunContext,
    ids: list[str] | None = None,
    attributes: list[str] | dict[str, str] | None = None,
    missing: Literal["fail", "skip"] = "fail",
) -> list[dict[str, Any]]:
    """Items by id (`ids`, or the previous step's rows or ids), as rows; `missing`: fail or skip."""
    settings = settings_of(ctx)
    names = attribute_names(attributes)
    wanted = [row["itemId"] for row in rows_of(ids if ids is not None else previous, "alloy.get")]
    wanted = list(dict.fromkeys(wanted))  # once each, in order
    check_item_count(len(wanted), settings, "alloy.get")
    rows: list[dict[str, Any]] = []
    skipped = 0
    for item_id in wanted:
        try:
            item = await ctx.alloy.get_item(item_id)
        except AlloyError as error:
            if error.is_not_found and missing == "skip":
                skipped += 1
                ctx.log.info("alloy.get: item %s does not exist; skipped", item_id)
                continue
            raise BuiltinError(f"alloy.get: cannot read item {item_id}: {error}") from None
        rows.append(item_row(item, names))
    ctx.log.info("alloy.get read %d items (%d missing, skipped)", len(rows), skipped)
    return rows


# --- alloy.update ----------------------------------------------------------------------------


def _check_values(options: Mapping[str, Any], settings: Settings, task_name: str) -> None:
    check_design_allowed(options.get("design"), settings)
    values, values_from = options.get("values") or {}, options.get("values_from") or {}
    stamp = options.get("stamp") or []
    if not (values or values_from or stamp):
        raise ParamsError(f"{task_name} needs 'values', 'values_from' or 'stamp': the attributes to set")
    for option, codes in (("values", values), ("values_from", values_from), ("stamp", stamp)):
        for code in codes:
            if not isinstance(code, str) or not code.startswith("attributes_"):
                raise ParamsError(f"option {option!r}: {code!r} is not an attribute code (attributes_…)")
    for code, expression in values_from.items():
        compile_jmespath(expression, f"values_from.{code}")


def _check_update(options: Mapping[str, Any], settings: Settings) -> None:
    _check_values(options, settings, "alloy.update")


@dataclass(frozen=True)
class _Values:
    """The attributes alloy.update and alloy.create set: the fixed `values`, and `values_from` (a
    JMESPath per attribute code) evaluated over each entry of the input."""

    fixed: dict[str, Any]
    expressions: dict[str, ParsedResult]

    @classmethod
    def compile(cls, values: dict[str, Any] | None, values_from: dict[str, str] | None) -> _Values:
        expressions = {
            code: compile_jmespath(text, f"values_from.{code}") for code, text in (values_from or {}).items()
        }
        return cls(dict(values or {}), expressions)

    def of(self, entry: Any) -> dict[str, Any]:
        """The attribute values for one entry of the input."""
        found = {
            code: search(expression, entry, f"values_from.{code}")
            for code, expression in self.expressions.items()
        }
        return {**self.fixed, **found}


class DesignGate:
    """Whether an item's design may be edited under the `design` option: it is that design, or
    implements it (an interface code), and is not the jobs design. Designs are read once per step."""

    def __init__(self, alloy: AlloyClient, allowed: str, settings: Settings) -> None:
        self.alloy = alloy
        self.allowed = allowed
        self.settings = settings
        self._implements: dict[str, bool] = {}

    async def check(self, design_code: str, item_id: str) -> None:
        if design_code == self.settings.jobs_design:
            raise BuiltinError(f"item {item_id} is a job record; built-in tasks never edit job records")
        check_design_allowed(self.allowed, self.settings)  # the worker's own allow-list, again
        if design_code == self.allowed:
            return
        if design_code not in self._implements:
            design = await self.alloy.get_design(design_code)
            self._implements[design_code] = any(entry.code == self.allowed for entry in design.implements)
        if not self._implements[design_code]:
            raise BuiltinError(
                f"item {item_id} is of design {design_code}, not {self.allowed} (option 'design'); "
                "it was not edited"
            )


@task(
    "alloy.update",
    max_retries=3,
    time_limit=3600,
    check=_check_update,
    example={
        "design": "designs_defects",
        "values": {"attributes_defectsStatus": "Escalated"},
        "stamp": ["attributes_defectsEscalated"],
    },
)
async def update(
    previous: Any = None,
    *,
    ctx: RunContext,
    design: str,
    values: dict[str, Any] | None = None,
    values_from: dict[str, str] | None = None,
    stamp: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Set attributes (only those) on the previous step's items, idempotently per run.

    `values` (fixed), `values_from` (a JMESPath per row, e.g. "response.body.jobNumber"), `stamp`
    (attributes set to now).

    `design`: the design or interface (in ALLOYSYNC_BUILTIN_ALLOY_DESIGNS) every item must be of.
    Returns the rows with the values set. Idempotent per run; signature conflicts are resolved.
    """
    settings = settings_of(ctx)
    _check_update({"design": design, "values": values, "values_from": values_from, "stamp": stamp}, settings)
    rows = rows_of(previous, "alloy.update")
    check_item_count(len(rows), settings, "alloy.update")
    setting = _Values.compile(values, values_from)
    gate = DesignGate(ctx.alloy, design, settings)
    edited = unchanged = already = 0
    result: list[dict[str, Any]] = []
    async with builtin_memory(settings) as memory:
        done = await memory.recall(ctx.run_id, ctx.step)
        for row in rows:
            item_id = row["itemId"]
            changes = setting.of(row)
            if stamp:
                now = format_alloy_datetime(utc_now())
                changes.update(dict.fromkeys(stamp, now))
            if f"item:{item_id}" in done:
                already += 1
                result.append(
                    {**row, **changes, "signature": done[f"item:{item_id}"] or row.get("signature")}
                )
                continue
            design_code, signature = row.get("designCode"), row.get("signature")
            if not design_code:
                item = await ctx.alloy.get_item(item_id)
                design_code, signature = item.designCode, item.signature
            await gate.check(str(design_code), item_id)
            if not stamp and all(code in row and row[code] == value for code, value in changes.items()):
                unchanged += 1
                ctx.log.info("alloy.update: item %s already holds the values; not written", item_id)
                result.append(row)
                continue
            try:
                item = await ctx.alloy.update_owned(item_id, changes, signature)
            except AlloyError as error:
                raise BuiltinError(f"alloy.update: cannot edit item {item_id}: {error}") from None
            await memory.remember(ctx.run_id, ctx.step, f"item:{item_id}", item.signature or "")
            edited += 1
            ctx.log.info("alloy.update edited item %s: %s", item_id, ", ".join(sorted(changes)))
            result.append({**row, **changes, "signature": item.signature})
    ctx.log.info(
        "alloy.update: %d items edited, %d already held the values, %d done earlier in this run",
        edited,
        unchanged,
        already,
    )
    return result


# --- alloy.create ----------------------------------------------------------------------------


def _check_create(options: Mapping[str, Any], settings: Settings) -> None:
    if options.get("stamp"):
        raise ParamsError("alloy.create takes 'values' and 'values_from', not 'stamp'")
    _check_values(options, settings, "alloy.create")


@task(
    "alloy.create",
    max_retries=3,
    time_limit=1800,
    check=_check_create,
    example={
        "design": "designs_inspections",
        "values": {"attributes_inspectionsStatus": "Planned"},
        "values_from": {"attributes_inspectionsDefect": "[itemId]"},
    },
)
async def create(
    previous: Any = None,
    *,
    ctx: RunContext,
    design: str,
    values: dict[str, Any] | None = None,
    values_from: dict[str, str] | None = None,
    collection: str = "Live",
) -> list[dict[str, Any]]:
    """Create items of an allowed design: one from `values`, or one per input entry (`values_from`).

    `design` must be in ALLOYSYNC_BUILTIN_ALLOY_DESIGNS; `values_from` maps attribute codes to a
    JMESPath over each entry of the previous step's list.

    Returns the created items as rows. A redelivered step does not create again what it created.
    """
    settings = settings_of(ctx)
    _check_create({"design": design, "values": values, "values_from": values_from}, settings)
    setting = _Values.compile(values, values_from)
    if setting.expressions:
        if not isinstance(previous, list):
            raise BuiltinError(
                "alloy.create with 'values_from' creates one item per entry of a list: its input is no list"
            )
        sources: list[Any] = previous
    else:
        sources = [None]
    check_item_count(len(sources), settings, "alloy.create")
    rows: list[dict[str, Any]] = []
    async with builtin_memory(settings) as memory:
        done = await memory.recall(ctx.run_id, ctx.step)
        for position, source in enumerate(sources):
            made = done.get(f"create:{position}")
            if made:
                rows.append({"itemId": made, "designCode": design})
                continue
            attributes = setting.of(source)
            try:
                item = await ctx.alloy.create_item(design, attributes, collection)
            except AlloyError as error:
                raise BuiltinError(f"alloy.create: cannot create an item of {design}: {error}") from None
            await memory.remember(ctx.run_id, ctx.step, f"create:{position}", item.itemId)
            ctx.log.info("alloy.create created item %s of %s", item.itemId, design)
            rows.append(item_row(item))
    return rows
