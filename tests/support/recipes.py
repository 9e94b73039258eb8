"""The designs and data of docs/recipes.md, and the recipes' job records read from that page.

The recipes are the page's ```json blocks (one job record each, under its `###` heading); the tests
run them as written, so the page cannot drift from what works. The designs are defined in the
emulator through its admin API with the codes the page uses (a real tenant's carry a generated
suffix; see docs/recipes.md).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.emulator import EmulatorProcess

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "docs" / "recipes.md"

DEFECTS = "designs_defects"
HIGHWAY_JOBS = "designs_highwayJobs"
WORK_ORDERS = "designs_workOrders"

DEFECT_ATTRIBUTES = {
    "attributes_defectsReference": "String",
    "attributes_defectsStatus": "String",
    "attributes_defectsPriority": "String",
    "attributes_defectsReported": "DateTime",
    "attributes_defectsLocation": "String",
    "attributes_defectsEscalated": "DateTime",
    "attributes_defectsContractorJob": "String",
}
HIGHWAY_JOB_ATTRIBUTES = {
    "attributes_highwayJobsReference": "String",
    "attributes_highwayJobsStatus": "String",
    "attributes_highwayJobsClosed": "DateTime",
}
WORK_ORDER_ATTRIBUTES = {
    "attributes_workOrdersReference": "String",
    "attributes_workOrdersStatus": "String",
    "attributes_workOrdersCompleted": "DateTime",
    "attributes_workOrdersCost": "Number",
}
WORK_ORDER_JOBS = "attributes_workOrdersJobs"  # Link to highway jobs

_BLOCK = re.compile(r"^### (?P<title>.+?)\n.*?```json\n(?P<record>.*?)\n```", re.S | re.M)


def recipes() -> dict[str, dict[str, Any]]:
    """Heading → job record ({"title", "task", "schedule", "timezone", "params"}) of each recipe."""
    return {
        match["title"].strip(): json.loads(match["record"]) for match in _BLOCK.finditer(RECIPES.read_text())
    }


def recipe(title_start: str) -> dict[str, Any]:
    for title, record in recipes().items():
        if title.startswith(title_start):
            return record
    raise KeyError(f"no recipe titled {title_start!r}… in {RECIPES}")


def define_recipe_designs(emulator: EmulatorProcess) -> None:
    """The defects, highway jobs and work orders designs, as docs/recipes.md names them."""
    emulator.define_design(DEFECTS, DEFECT_ATTRIBUTES, name="Defects")
    emulator.define_design(HIGHWAY_JOBS, HIGHWAY_JOB_ATTRIBUTES, name="Highway jobs")
    body = {
        "code": WORK_ORDERS,
        "name": "Work orders",
        "attributes": [
            {"code": code, "name": code, "type": kind} for code, kind in WORK_ORDER_ATTRIBUTES.items()
        ]
        + [
            {
                "code": WORK_ORDER_JOBS,
                "name": WORK_ORDER_JOBS,
                "options": {
                    "discriminator": "DodiAttributeOptionsLinkWebModel",
                    "code": HIGHWAY_JOBS,
                    "graph": "Lookup",
                    "weakReference": True,
                },
            }
        ],
    }
    emulator.admin("POST", "designs", body)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def days_ago(days: float) -> str:
    return iso(datetime.now(UTC) - timedelta(days=days))


def defect(
    reference: str, status: str, priority: str, age_days: float, location: str = "High Street"
) -> dict[str, Any]:
    """A defects item draft for the emulator's bulk create."""
    return {
        "designCode": DEFECTS,
        "attributes": [
            {"attributeCode": "attributes_defectsReference", "value": reference},
            {"attributeCode": "attributes_defectsStatus", "value": status},
            {"attributeCode": "attributes_defectsPriority", "value": priority},
            {"attributeCode": "attributes_defectsReported", "value": days_ago(age_days)},
            {"attributeCode": "attributes_defectsLocation", "value": location},
        ],
    }


def values_of(emulator: EmulatorProcess, design: str) -> dict[str, dict[str, Any]]:
    """Every item of `design` as {reference attribute's value: {code: value}} (read as an observer)."""
    items = emulator.admin("GET", f"items?design={design}")["items"]
    reference = {DEFECTS: "attributes_defectsReference", HIGHWAY_JOBS: "attributes_highwayJobsReference",
                 WORK_ORDERS: "attributes_workOrdersReference"}[design]  # fmt: skip
    result = {}
    for item in items:
        values = {a["attributeCode"]: a.get("value") for a in item["attributes"]}
        values["itemId"] = item["itemId"]
        result[str(values.get(reference))] = values
    return result
