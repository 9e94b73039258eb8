"""How a jobs design in Alloy measures up to the configured attribute codes: a pure comparison.

This module owns the verdict on a design: for each attribute of the job record (`model/design.py`),
is the configured code on the design, with the type alloysync needs? `inspect_design` returns a
`DesignReport`; it does no I/O, so `alloysync check` prints it and `serve` can use it at start-up to
switch off the optional features whose attributes the design lacks.

- present: on the design with the expected type;
- missing required: a first-release attribute (Enabled, Status, ...) is not on the design: a problem;
- missing optional: a later attribute (Overlap, Notify, ...) is not on the design: its feature is off,
  which is not a problem;
- wrong type: the code is on the design with another type: a problem, optional or not (alloysync's
  writes would be refused), and an optional one's feature is off too;
- too short: Message accepts fewer characters than `ALLOYSYNC_MESSAGE_MAX_CHARS`: a problem.

Every problem line names the setting and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from alloysync.alloy.designs import Design
from alloysync.model.design import JOB_ATTRIBUTES, JobAttribute
from alloysync.settings import JobAttributeCodes

__all__ = ["DesignReport", "TooShort", "WrongType", "configured_code", "inspect_design"]


@dataclass(frozen=True)
class _Configured:
    """An attribute of the job record and the code configured for it: what a problem is about."""

    attribute: JobAttribute
    code: str

    @property
    def assignment(self) -> str:
        """The setting as it is configured, `ALLOYSYNC_ATTRIBUTES__<FIELD>=<code>`."""
        return f"{self.attribute.setting}={self.code}"


@dataclass(frozen=True)
class WrongType(_Configured):
    """A configured code that is on the design with another type than alloysync needs."""

    found_type: str


@dataclass(frozen=True)
class TooShort(_Configured):
    """A String attribute alloysync writes whose maximum length is below what alloysync may write."""

    max_length: int
    needed: int
    setting: str  # the setting that decides how long alloysync's values get


@dataclass(frozen=True)
class DesignReport:
    """The comparison of one design with the configured codes (see the module docstring)."""

    design_code: str
    design_name: str
    present: tuple[JobAttribute, ...]
    missing_required: tuple[JobAttribute, ...]
    missing_optional: tuple[JobAttribute, ...]
    wrong_type: tuple[WrongType, ...]
    too_short: tuple[TooShort, ...]
    codes: dict[str, str]  # field -> configured code

    @property
    def ok(self) -> bool:
        """No problems: every required attribute is usable (optional features may be off)."""
        return not (self.missing_required or self.wrong_type or self.too_short)

    @property
    def off_fields(self) -> frozenset[str]:
        """Fields of the optional attributes alloysync cannot use here: their features are off."""
        wrong = {problem.attribute.field for problem in self.wrong_type if problem.attribute.optional}
        return frozenset({attribute.field for attribute in self.missing_optional} | wrong)

    @property
    def features_off(self) -> tuple[str, ...]:
        """The names of the features that are off, in the order of the job record."""
        return tuple(attribute.feature for attribute in JOB_ATTRIBUTES if attribute.field in self.off_fields)

    def problem_lines(self) -> list[str]:
        """One line per problem: which setting, what is wrong, and how to fix it."""
        design = self.design_code
        lines = []
        for attribute in self.missing_required:
            code = self.codes[attribute.field]
            lines.append(
                f"{attribute.setting}={code} is not an attribute of design {design}: run "
                f"`alloysync setup --adopt {design}` to add the missing attributes, or set "
                f"{attribute.setting} to the code of the design's {attribute.name} attribute "
                f"({attribute.type} attribute)"
            )
        for wrong in self.wrong_type:
            lines.append(
                f"{wrong.assignment} is a {wrong.found_type} attribute on design "
                f"{design}, but alloysync needs a {wrong.attribute.type} attribute there: set "
                f"{wrong.attribute.setting} to the code of a {wrong.attribute.type} attribute (or "
                f"change the attribute's type in Alloy)"
            )
        for short in self.too_short:
            lines.append(
                f"{short.assignment} accepts at most {short.max_length} characters on "
                f"design {design}, but {short.setting} is {short.needed}: lower {short.setting} to "
                f"{short.max_length}, or raise the attribute's maximum length in Alloy"
            )
        return lines

    def feature_lines(self) -> list[str]:
        """One line per optional feature that is off, saying why and how to turn it on."""
        design = self.design_code
        lines = []
        wrong_fields = {problem.attribute.field for problem in self.wrong_type}
        for attribute in JOB_ATTRIBUTES:
            if attribute.field not in self.off_fields:
                continue
            code = self.codes[attribute.field]
            if attribute.field in wrong_fields:
                why = f"{attribute.setting}={code} has the wrong type (see the problem above)"
            else:
                why = (
                    f"design {design} has no {attribute.name} attribute ({attribute.setting}={code}); "
                    f"`alloysync setup --adopt {design}` adds it"
                )
            lines.append(f"{attribute.feature} is off: {why}")
        return lines


def configured_code(codes: JobAttributeCodes, attribute: JobAttribute) -> str:
    """The code configured for `attribute` (`ALLOYSYNC_ATTRIBUTES__<FIELD>`)."""
    code: str = getattr(codes, attribute.field)
    return code


def inspect_design(
    design: Design, codes: JobAttributeCodes, *, message_max_chars: int | None = None
) -> DesignReport:
    """Compare `design` with the configured `codes`.

    `message_max_chars` (`ALLOYSYNC_MESSAGE_MAX_CHARS`), when given, is checked against the Message
    attribute's maximum length.
    """
    present: list[JobAttribute] = []
    missing_required: list[JobAttribute] = []
    missing_optional: list[JobAttribute] = []
    wrong_type: list[WrongType] = []
    too_short: list[TooShort] = []
    configured = {attribute.field: configured_code(codes, attribute) for attribute in JOB_ATTRIBUTES}
    for attribute in JOB_ATTRIBUTES:
        code = configured[attribute.field]
        found = design.attribute(code)
        if found is None:
            (missing_optional if attribute.optional else missing_required).append(attribute)
            continue
        if found.type.casefold() != attribute.type.value.casefold():
            wrong_type.append(WrongType(attribute, code, found.type or "untyped"))
            continue
        present.append(attribute)
        if attribute.field == "message" and message_max_chars is not None:
            limit = found.max_length
            if limit is not None and limit < message_max_chars:
                too_short.append(
                    TooShort(attribute, code, limit, message_max_chars, "ALLOYSYNC_MESSAGE_MAX_CHARS")
                )
    return DesignReport(
        design_code=design.code,
        design_name=design.name,
        present=tuple(present),
        missing_required=tuple(missing_required),
        missing_optional=tuple(missing_optional),
        wrong_type=tuple(wrong_type),
        too_short=tuple(too_short),
        codes=configured,
    )
