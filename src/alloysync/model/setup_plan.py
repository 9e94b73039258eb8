"""What `alloysync setup` plans for a design (pure): which of its attributes serve as which job
attribute, which attributes to create, the conflicts that stop setup, and the settings to print.
See `alloysync/setup.py` for the rules in full and for carrying the plan out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from alloysync.alloy.designs import Design, DesignAttribute, NewAttribute, attribute_options
from alloysync.model.design import JOB_ATTRIBUTES, TITLE_CODE, JobAttribute
from alloysync.model.design_report import configured_code
from alloysync.settings import JobAttributeCodes

DESIGN_SETTING = "ALLOYSYNC_JOBS_DESIGN"


@dataclass
class AttributeMapping:
    """The job attributes found on a design (`found`: field -> code, `how`: field -> why that one),
    the ones to create, and the conflicts that stop setup."""

    found: dict[str, str] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    missing: list[JobAttribute] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def map_attributes(design: Design, codes: JobAttributeCodes) -> AttributeMapping:
    """Map each job attribute to one of `design`'s attributes (see the module docstring)."""
    mapping = AttributeMapping()
    claimed: dict[str, str] = {}  # attribute code -> the setting that uses it
    for attribute in JOB_ATTRIBUTES:
        candidate, how = _candidate(design, codes, attribute, mapping)
        if candidate is None:
            if how:  # an ambiguity was recorded as a conflict
                continue
            mapping.missing.append(attribute)
            continue
        if candidate.type.casefold() != attribute.type.value.casefold():
            mapping.conflicts.append(
                f'attribute "{candidate.name}" ({candidate.code}) of design {design.code} is a '
                f"{candidate.type or 'untyped'} attribute, but alloysync needs a {attribute.type} "
                f"attribute for {attribute.setting}: change its type or rename it in Alloy, or set "
                f"{attribute.setting} to the code of a {attribute.type} attribute"
            )
            continue
        if candidate.code in claimed:
            mapping.conflicts.append(
                f"{attribute.setting} and {claimed[candidate.code]} would both use attribute "
                f"{candidate.code} of design {design.code}: set one of them to another attribute's code"
            )
            continue
        claimed[candidate.code] = attribute.setting
        mapping.found[attribute.field] = candidate.code
        mapping.how[attribute.field] = how
    return mapping


def _candidate(
    design: Design, codes: JobAttributeCodes, attribute: JobAttribute, mapping: AttributeMapping
) -> tuple[DesignAttribute | None, str]:
    if attribute.field == "title":
        interface_title = design.attribute(TITLE_CODE)
        if interface_title is not None:
            return interface_title, "Alloy's interface attribute"
    configured = design.attribute(configured_code(codes, attribute))
    if configured is not None:
        return configured, "configured code"
    named = design.attributes_named(attribute.name)
    if len(named) > 1:
        listed = ", ".join(candidate.code for candidate in named)
        mapping.conflicts.append(
            f'design {design.code} has {len(named)} attributes named "{attribute.name}" ({listed}): '
            f"set {attribute.setting} to the one alloysync should use"
        )
        return None, "ambiguous"
    if named:
        return named[0], "by name"
    return None, ""


def new_attribute(attribute: JobAttribute) -> NewAttribute:
    """The attribute setup creates for a job attribute: its name, type and maximum length."""
    options = attribute_options(attribute.type.value, max_length=attribute.max_length)
    return NewAttribute(name=attribute.name, type=attribute.type.value, options=options)


def describe_new(attribute: JobAttribute) -> str:
    limit = f", max {attribute.max_length}" if attribute.max_length is not None else ""
    optional = ", optional" if attribute.optional else ""
    return f'"{attribute.name}" ({attribute.type}{limit}{optional}) for {attribute.setting}'


def settings_lines(design_code: str, codes: Mapping[str, str]) -> dict[str, str]:
    """The settings setup prints, in a stable order: the design, then each attribute in record order."""
    lines = {DESIGN_SETTING: design_code}
    for attribute in JOB_ATTRIBUTES:
        lines[attribute.setting] = codes[attribute.field]
    return lines
