"""`inspect_design`: a design compared with the configured codes (pure: no Alloy, no I/O)."""

from __future__ import annotations

from typing import Any

from alloysync.alloy.designs import Design
from alloysync.model.design import BY_FIELD, JOB_ATTRIBUTES, TITLE_CODE
from alloysync.model.design_report import inspect_design
from alloysync.settings import JobAttributeCodes

DESIGN = "designs_alloysyncJobs_65a1b2c3d4e5f60718293a4b"
SUFFIX = "65a1b2c3d4e5f60718293a4c"


def generated_codes() -> JobAttributeCodes:
    """Codes the way Alloy generates them (the Title keeps the interface's plain code)."""
    values = {
        attribute.field: f"attributes_alloysyncJobs{attribute.name.title().replace(' ', '')}_{SUFFIX}"
        for attribute in JOB_ATTRIBUTES
    }
    values["title"] = TITLE_CODE
    return JobAttributeCodes(**values)


def design_with(
    codes: JobAttributeCodes,
    *,
    without: tuple[str, ...] = (),
    types: dict[str, str] | None = None,
    max_lengths: dict[str, int] | None = None,
) -> Design:
    attributes: list[dict[str, Any]] = []
    for attribute in JOB_ATTRIBUTES:
        if attribute.field in without:
            continue
        options: dict[str, Any] = {"discriminator": "x"}
        limit = (max_lengths or {}).get(attribute.field, attribute.max_length)
        if limit is not None:
            options["max"] = limit
        attributes.append(
            {
                "name": attribute.name,
                "code": getattr(codes, attribute.field),
                "type": (types or {}).get(attribute.field, attribute.type.value),
                "options": options,
            }
        )
    return Design.model_validate(
        {"code": DESIGN, "name": "alloysync jobs", "attributes": attributes, "metadata": {"signature": "s"}}
    )


def test_every_attribute_of_the_record_has_a_setting() -> None:
    assert set(BY_FIELD) == set(JobAttributeCodes.model_fields)


def test_a_complete_design_is_ok() -> None:
    codes = generated_codes()
    report = inspect_design(design_with(codes), codes, message_max_chars=500)

    assert report.ok
    assert len(report.present) == len(JOB_ATTRIBUTES)
    assert report.off_fields == frozenset() and report.features_off == ()
    assert report.problem_lines() == [] and report.feature_lines() == []


def test_missing_optional_attributes_are_features_off_not_problems() -> None:
    codes = generated_codes()
    report = inspect_design(design_with(codes, without=("backfill", "notify")), codes)

    assert report.ok
    assert report.off_fields == {"backfill", "notify"}
    assert report.features_off == ("backfill", "notifications")
    lines = report.feature_lines()
    assert len(lines) == 2
    assert lines[0].startswith("backfill is off: design ")
    assert "ALLOYSYNC_ATTRIBUTES__BACKFILL=" in lines[0] and f"alloysync setup --adopt {DESIGN}" in lines[0]


def test_missing_required_and_wrongly_typed_attributes_are_problems_naming_setting_and_fix() -> None:
    codes = generated_codes()
    design = design_with(codes, without=("status",), types={"run_count": "String", "max_age": "Number"})
    report = inspect_design(design, codes)

    assert not report.ok
    assert [attribute.field for attribute in report.missing_required] == ["status"]
    assert [(wrong.attribute.field, wrong.found_type) for wrong in report.wrong_type] == [
        ("run_count", "String"),
        ("max_age", "Number"),
    ]
    assert report.off_fields == {"max_age"}  # a wrongly typed optional attribute: its feature is off too
    problems = report.problem_lines()
    assert len(problems) == 3
    assert problems[0].startswith(f"ALLOYSYNC_ATTRIBUTES__STATUS={codes.status} is not an attribute of")
    assert f"alloysync setup --adopt {DESIGN}" in problems[0]
    assert "ALLOYSYNC_ATTRIBUTES__RUN_COUNT=" in problems[1]
    assert "is a String attribute" in problems[1] and "needs a Number attribute" in problems[1]
    assert "ALLOYSYNC_ATTRIBUTES__MAX_AGE=" in problems[2]


def test_a_message_shorter_than_the_configured_limit_is_a_problem() -> None:
    codes = generated_codes()
    design = design_with(codes, max_lengths={"message": 300})

    assert inspect_design(design, codes, message_max_chars=300).ok
    report = inspect_design(design, codes, message_max_chars=500)
    assert not report.ok
    (line,) = report.problem_lines()
    assert "at most 300 characters" in line and "ALLOYSYNC_MESSAGE_MAX_CHARS is 500" in line


def test_the_default_codes_on_a_generated_design_are_all_missing() -> None:
    """What a user sees who ran setup but did not apply its settings."""
    report = inspect_design(design_with(generated_codes()), JobAttributeCodes())

    required = [attribute for attribute in JOB_ATTRIBUTES if not attribute.optional]
    # Title is found: Alloy's interface attribute keeps its plain code everywhere.
    assert len(report.missing_required) == len(required) - 1
    assert len(report.missing_optional) == len(JOB_ATTRIBUTES) - len(required)
