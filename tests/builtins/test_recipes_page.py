"""docs/recipes.md: every recipe is a valid record under its operator settings, and the demo seeds
one of them as written there."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import SecretStr

from alloysync.alloy.models import Attribute, Item
from alloysync.emulator import seed
from alloysync.model.jobs import JobSpec, read_definition, validate_job
from alloysync.model.registry import load_task_modules
from alloysync.settings import Settings
from tests.support.recipes import recipe, recipes

OPERATOR = Settings(
    builtin_alloy_designs=["designs_defects", "designs_highwayJobs"],
    builtin_http_allow=["https://api.contractor.example/v1/"],
    builtin_http_secrets={"contractor": SecretStr("Bearer x")},
    builtin_mail_allow=["council.example"],
    smtp_host="smtp.council.example",
)


def test_the_page_has_five_recipes_and_each_is_valid() -> None:
    found = recipes()
    assert len(found) == 5, list(found)
    registry = load_task_modules(OPERATOR.task_modules_to_load)
    codes = OPERATOR.attributes
    for title, record in found.items():
        values = {
            codes.title: record["title"],
            codes.enabled: True,
            codes.task: record["task"],
            codes.params: record["params"],
            codes.schedule: record["schedule"],
            codes.timezone: record["timezone"],
        }
        item = Item(
            itemId="job-1",
            designCode=OPERATOR.jobs_design,
            attributes=[Attribute(attributeCode=code, value=value) for code, value in values.items()],
        )
        job = validate_job(read_definition(item, codes), registry, OPERATOR, datetime.now(UTC))
        assert isinstance(job, JobSpec), f"{title}: {job}"
        assert job.schedule.timezone == "Europe/London"


def test_the_demo_seeds_the_close_jobs_recipe_as_written() -> None:
    written = recipe("Close jobs whose work orders are completed")
    assert written["task"] == seed.RECIPE_TASK
    assert written["params"] == seed.RECIPE_PARAMS
