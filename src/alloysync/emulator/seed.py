"""The seeds: what a fresh emulator holds (`--seed`, and the admin API's reset).

- `empty`: a new tenant: no designs, no items (create the jobs design with `alloysync setup`).
- `none`: the jobs design under the configured codes (`ALLOYSYNC_JOBS_DESIGN`,
  `ALLOYSYNC_ATTRIBUTES__*`; by default `designs_alloysyncJobs` and its attributes), no items.
- `demo`: that design and five job records that show what alloysync does: one-off now, cron every
  minute, once at a set time (45 s after seeding), a paused weekly job, and a job naming an unknown
  task (it must end up `Invalid`). The attributes alloysync writes (Status, Message, ...) are
  absent at first, as on a record a user has just created. Then a sixth job made of built-in tasks
  only, the docs/recipes.md recipe "Close jobs whose work orders are completed" (run once, now),
  with the two designs it works on (`designs_highwayJobs`, `designs_workOrders`) and a few items:
  it closes J-1 and J-2, whose work orders are completed (the demo allows alloy.update on
  `designs_highwayJobs` through ALLOYSYNC_BUILTIN_ALLOY_DESIGNS).

The jobs design has every attribute of `alloysync.model.design.JOB_ATTRIBUTES` (the one list of a job
record's attributes), with its name, type and String limit; Title is the interface attribute
`attributes_itemsTitle` unless the settings give it another code. The item title template is the
Title, the subtitle template the Status.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alloysync.emulator.attribute_options import (
    AttributeOptions,
    BooleanOptions,
    DateTimeOptions,
    JsonOptions,
    LinkOptions,
    NumberOptions,
    StringOptions,
)
from alloysync.emulator.design_store import AttributeDraft, DesignDraft
from alloysync.emulator.designs import TITLE_CODE
from alloysync.emulator.store import ItemDraft
from alloysync.model.design import DEFAULT_DESIGN_NAME, JOB_ATTRIBUTES, AttributeType, JobAttribute
from alloysync.settings import JobAttributeCodes

SEED_NAMES = ("none", "demo", "empty")
SEEDS_WITH_JOBS_DESIGN = ("none", "demo")
RUN_AT_DELAY = timedelta(seconds=45)
JOBS_COLLECTIONS = ("Live", "Archive")


def jobs_design(codes: JobAttributeCodes) -> tuple[DesignDraft, list[AttributeDraft]]:
    """The jobs design and its attributes under the configured attribute codes."""
    draft = DesignDraft(
        name=DEFAULT_DESIGN_NAME,
        title="{{" + codes.title + "}}",
        subtitle="{{" + codes.status + "}}",
        collections=JOBS_COLLECTIONS,
    )
    attributes = [
        AttributeDraft(name=attribute.name, options=_options(attribute), code=getattr(codes, attribute.field))
        for attribute in JOB_ATTRIBUTES
        if getattr(codes, attribute.field) != TITLE_CODE
    ]
    return draft, attributes


def _options(attribute: JobAttribute) -> AttributeOptions:
    if attribute.type is AttributeType.STRING:
        return StringOptions(max=attribute.max_length)
    if attribute.type is AttributeType.NUMBER:
        return NumberOptions(decimal_places=0)
    if attribute.type is AttributeType.BOOLEAN:
        return BooleanOptions()
    if attribute.type is AttributeType.DATETIME:
        return DateTimeOptions(precision="Milliseconds")
    return JsonOptions()


PRICE_PIPELINE = "coinrequest.get_btc_prices | coinrequest.process_prices | coinrequest.compose_price_email"
PRICES_ONLY = "coinrequest.get_btc_prices | coinrequest.process_prices"


def demo_jobs(design_code: str, codes: JobAttributeCodes, now: datetime) -> list[ItemDraft]:
    """The five demo job records; `now` fixes the time of the run-at job."""
    run_at = (now.astimezone(UTC) + RUN_AT_DELAY).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")

    def job(
        title: str, *, enabled: bool, task: str, params: dict[str, Any], schedule: str, timezone: str
    ) -> ItemDraft:
        attributes = {
            codes.title: title,
            codes.enabled: enabled,
            codes.task: task,
            codes.params: params,
            codes.schedule: schedule,
            codes.timezone: timezone,
        }
        return ItemDraft(design_code=design_code, attributes=attributes)

    return [
        job(
            "BTC price e-mail (one-off)",
            enabled=True,
            task=PRICE_PIPELINE,
            params={"currencies": ["USD", "GBP", "EUR"]},
            schedule="",
            timezone="",
        ),
        job(
            "BTC prices every minute",
            enabled=True,
            task=PRICES_ONLY,
            params={"currencies": ["USD", "EUR"]},
            schedule="* * * * *",
            timezone="Europe/London",
        ),
        job(
            "BTC price e-mail at a set time",
            enabled=True,
            task=PRICE_PIPELINE,
            params={},
            schedule=run_at,
            timezone="",
        ),
        job(
            "Weekly price report (paused)",
            enabled=False,
            task=PRICE_PIPELINE,
            params={},
            schedule="0 8 * * mon",
            timezone="Europe/London",
        ),
        job(
            "Broken job: unknown task",
            enabled=True,
            task="coinrequest.fetch_everything",
            params={},
            schedule="",
            timezone="",
        ),
    ]


# --- the built-in tasks' recipe (docs/recipes.md, "Close jobs whose work orders are completed") ---

HIGHWAY_JOBS = "designs_highwayJobs"
WORK_ORDERS = "designs_workOrders"
RECIPE_TITLE = "Close jobs whose work orders are completed (recipe)"
RECIPE_TASK = "alloy.query | data.select | alloy.get | data.filter | alloy.update"
RECIPE_PARAMS: dict[str, Any] = {
    "steps": [
        {
            "design": WORK_ORDERS,
            "where": {"attributes_workOrdersStatus": "Completed"},
            "attributes": {"jobs": "attributes_workOrdersJobs"},
        },
        {"expression": "[].jobs[]"},
        {
            "attributes": {
                "ref": "attributes_highwayJobsReference",
                "status": "attributes_highwayJobsStatus",
            },
            "missing": "skip",
        },
        {"where": "status != 'Closed'"},
        {
            "design": HIGHWAY_JOBS,
            "values": {"attributes_highwayJobsStatus": "Closed"},
            "stamp": ["attributes_highwayJobsClosed"],
        },
    ]
}


def recipe_designs() -> list[tuple[str, DesignDraft, list[AttributeDraft]]]:
    """The highway jobs and work orders designs of the recipe, under the codes docs/recipes.md uses."""

    def text(code: str) -> AttributeDraft:
        return AttributeDraft(name=code.split("_")[1], options=StringOptions(max=100), code=code)

    jobs = [
        text("attributes_highwayJobsReference"),
        text("attributes_highwayJobsStatus"),
        AttributeDraft(
            name="Closed",
            options=DateTimeOptions(precision="Milliseconds"),
            code="attributes_highwayJobsClosed",
        ),
    ]
    orders = [
        text("attributes_workOrdersReference"),
        text("attributes_workOrdersStatus"),
        AttributeDraft(name="Jobs", options=LinkOptions(code=HIGHWAY_JOBS), code="attributes_workOrdersJobs"),
    ]
    return [
        (HIGHWAY_JOBS, DesignDraft(name="Highway jobs", title="{{attributes_highwayJobsReference}}"), jobs),
        (WORK_ORDERS, DesignDraft(name="Work orders", title="{{attributes_workOrdersReference}}"), orders),
    ]


def recipe_highway_jobs() -> list[ItemDraft]:
    """J-1 to J-3, in progress."""
    return [
        ItemDraft(
            HIGHWAY_JOBS,
            {"attributes_highwayJobsReference": f"J-{n}", "attributes_highwayJobsStatus": "In progress"},
        )
        for n in (1, 2, 3)
    ]


def recipe_work_orders(job_ids: list[str]) -> list[ItemDraft]:
    """W-1 (completed: J-1), W-2 (completed: J-2), W-3 (in progress: J-3)."""
    return [
        ItemDraft(
            WORK_ORDERS,
            {
                "attributes_workOrdersReference": f"W-{n}",
                "attributes_workOrdersStatus": status,
                "attributes_workOrdersJobs": [job_ids[n - 1]],
            },
        )
        for n, status in ((1, "Completed"), (2, "Completed"), (3, "In progress"))
    ]


def recipe_job(design_code: str, codes: JobAttributeCodes) -> ItemDraft:
    """The recipe's job record, to run once, now."""
    attributes = {
        codes.title: RECIPE_TITLE,
        codes.enabled: True,
        codes.task: RECIPE_TASK,
        codes.params: RECIPE_PARAMS,
        codes.schedule: "",
        codes.timezone: "",
    }
    return ItemDraft(design_code=design_code, attributes=attributes)
