"""`alloysync setup`: create (or adopt) the jobs design and its attributes in Alloy, print the settings.

This module owns turning a tenant into one alloysync can use. Alloy generates design and attribute
codes, so the codes alloysync must be configured with only exist once setup has run; it
prints them as `.env` lines (`ALLOYSYNC_JOBS_DESIGN=…`, `ALLOYSYNC_ATTRIBUTES__<FIELD>=…`, one per
attribute of `model.design.JOB_ATTRIBUTES`), or writes them into `--env-file`.

Which design:
- `--adopt CODE`: that design, which must exist;
- otherwise the configured `ALLOYSYNC_JOBS_DESIGN` when it exists, else the one design named
  `--design-name` (default "alloysync jobs"; names compare trimmed and case-insensitively, found
  through Alloy's design list `GET /api/design?Query=`), else a new design of that name.

Which attributes: for each job attribute, Alloy's interface attribute `attributes_itemsTitle` for
Title where the design carries it; else the configured code where the design has it; else the
design's attribute of that name (`model.design` names); else a new attribute of that name, type and
maximum length. An existing attribute of the wrong type, or a name that several attributes share,
stops setup before anything is created. New attributes are added one at a time, each with the
design signature the previous add returned.

So setup is idempotent: a second run finds the design and every attribute, creates nothing, and
prints the same lines. `--dry-run` reads and plans but creates nothing. The token is never printed
or written; progress goes to stderr, the settings to stdout.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

from alloysync.alloy.client import AlloyClient
from alloysync.alloy.designs import Design, normalise_name
from alloysync.alloy.errors import AlloyError
from alloysync.log import configure_logging
from alloysync.model.design import DEFAULT_DESIGN_NAME, JOB_ATTRIBUTES, TITLE_CODE, JobAttribute
from alloysync.model.design_report import inspect_design
from alloysync.model.setup_plan import (
    DESIGN_SETTING,
    AttributeMapping,
    describe_new,
    map_attributes,
    new_attribute,
    settings_lines,
)
from alloysync.settings import JobAttributeCodes, Settings

__all__ = [
    "AttributeMapping",
    "SetupFailed",
    "SetupOptions",
    "SetupRun",
    "map_attributes",
    "new_attribute",
    "run_setup",
    "settings_lines",
    "update_env_file",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
# A stale design signature while adding attributes (someone else edited the design): re-read, retry.
MAX_DESIGN_CONFLICTS = 3
_ENV_KEY = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")

T = TypeVar("T")


class SetupFailed(Exception):
    """Setup cannot go on; the message says what is wrong and how to fix it (one line each)."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


def update_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Set `values` in the `.env` file at `path`: lines already there are updated in place (a key
    repeated further down is dropped, since the last one would win), the others appended; every
    other line is kept as it was. A new file is readable by its owner only (it usually ends up
    holding the token too); an existing one keeps its permissions. Written atomically."""
    if path.is_dir():
        raise SetupFailed(f"--env-file {path} is a directory: give the path of a .env file")
    try:
        original = path.read_text(encoding="utf-8") if path.exists() else ""
    except OSError as error:
        raise SetupFailed(f"cannot read --env-file {path}: {error.strerror or error}") from None
    wanted = {key.upper(): (key, value) for key, value in values.items()}
    written: set[str] = set()
    lines_out: list[str] = []
    for line in original.splitlines():
        match = _ENV_KEY.match(line)
        key = match.group(1).upper() if match else None
        if key is None or key not in wanted:
            lines_out.append(line)
            continue
        if key in written:
            continue
        name, value = wanted[key]
        lines_out.append(f"{name}={value}")
        written.add(key)
    lines_out.extend(f"{name}={value}" for key, (name, value) in wanted.items() if key not in written)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines_out) + "\n")
        Path(temporary).chmod(mode)
        Path(temporary).replace(path)
    except OSError as error:
        raise SetupFailed(f"cannot write --env-file {path}: {error.strerror or error}") from None


# --- talking to Alloy ------------------------------------------------------------------------


@dataclass(frozen=True)
class SetupOptions:
    """The command line of one run."""

    design_name: str = DEFAULT_DESIGN_NAME
    adopt: str | None = None
    dry_run: bool = False
    env_file: Path | None = None


class SetupRun:
    """One run of setup against one Alloy, reporting progress to `progress`."""

    def __init__(
        self, alloy: AlloyClient, settings: Settings, options: SetupOptions, progress: TextIO
    ) -> None:
        self.alloy = alloy
        self.settings = settings
        self.options = options
        self.progress = progress
        self.doing = "read the design"  # what the current Alloy call is for, for error messages
        self.design: Design | None = None  # the design as it is after the last change

    def say(self, text: str) -> None:
        print(text, file=self.progress, flush=True)

    async def run(self) -> dict[str, str] | None:
        """Create what is missing; the settings lines, or None after a dry run that would create things."""
        design = await self.find_design()
        if design is None:
            return await self.create_everything()
        mapping = map_attributes(design, self.settings.attributes)
        if mapping.conflicts:
            raise SetupFailed(*mapping.conflicts, "nothing was created")
        for attribute in JOB_ATTRIBUTES:
            if attribute.field in mapping.found:
                how = mapping.how[attribute.field]
                self.say(f"attribute {attribute.name}: {mapping.found[attribute.field]} ({how})")
        if self.options.dry_run:
            for attribute in mapping.missing:
                self.say(f"would create attribute {describe_new(attribute)}")
            if mapping.missing:
                self.say(f"dry run: would create {len(mapping.missing)} attribute(s); nothing was created")
                return None
            self.say("dry run: nothing to create")
            self.design = design
            return settings_lines(design.code, mapping.found)
        codes = await self.add_attributes(design, mapping.missing, dict(mapping.found))
        created = len(mapping.missing)
        self.say(
            f"created {created} attribute(s)" if created else "nothing to create: every attribute exists"
        )
        return settings_lines(design.code, codes)

    async def find_design(self) -> Design | None:
        if self.options.adopt:
            self.doing = f"read design {self.options.adopt}"
            try:
                design = await self.alloy.get_design(self.options.adopt)
            except AlloyError as error:
                if error.is_not_found:
                    raise SetupFailed(
                        f"--adopt {self.options.adopt}: Alloy has no design with that code (or the API "
                        "key's user cannot read it): give the code of an existing design, such as "
                        "designs_myJobs_65a1b2c3d4e5f60718293a4b"
                    ) from None
                raise
            self.say(f'design: {design.code} "{design.name}" (--adopt)')
            return design
        configured = self.settings.jobs_design
        self.doing = f"read design {configured}"
        found = await _unless_not_found(self.alloy.get_design(configured))
        if found is not None:
            self.say(f'design: {found.code} "{found.name}" ({DESIGN_SETTING})')
            return found
        return await self.find_design_by_name()

    async def find_design_by_name(self) -> Design | None:
        name = self.options.design_name
        self.doing = f'look for a design named "{name}"'
        listed = await _unless_not_found(self.alloy.list_designs(name))
        if listed is None:
            self.say(
                f'warning: this Alloy cannot list designs; a design named "{name}" made by an earlier '
                f"run is found only through {DESIGN_SETTING}"
            )
            listed = []
        same_name = [design for design in listed if normalise_name(design.name) == normalise_name(name)]
        if len(same_name) > 1:
            codes = ", ".join(design.code for design in same_name)
            raise SetupFailed(
                f'{len(same_name)} designs are named "{name}" ({codes}): run `alloysync setup --adopt '
                "<code>` with the one to use"
            )
        if not same_name:
            return None
        # The list may carry designs without their attributes: read the one found in full.
        self.doing = f"read design {same_name[0].code}"
        design = await self.alloy.get_design(same_name[0].code)
        self.say(f'design: {design.code} "{design.name}" (found by name)')
        return design

    async def create_everything(self) -> dict[str, str] | None:
        name = self.options.design_name
        if self.options.dry_run:
            self.say(f'would create design "{name}"')
            for attribute in JOB_ATTRIBUTES:
                if attribute.field == "title":
                    self.say(
                        f"would use Alloy's interface attribute {TITLE_CODE} for Title, or create "
                        f"{describe_new(attribute)} if the new design lacks it"
                    )
                else:
                    self.say(f"would create attribute {describe_new(attribute)}")
            self.say("dry run: nothing was created")
            return None
        self.doing = f'create design "{name}"'
        collections = sorted({"Live", self.settings.jobs_collection})
        design = await self.alloy.create_design(name, collections=collections)
        self.say(f'created design {design.code} "{design.name or name}"')
        mapping = map_attributes(design, self.settings.attributes)
        if mapping.conflicts:  # a new design holds only interface attributes; never expected
            raise SetupFailed(*mapping.conflicts)
        codes = await self.add_attributes(design, mapping.missing, dict(mapping.found))
        self.say(f"created 1 design and {len(mapping.missing)} attribute(s)")
        return settings_lines(design.code, codes)

    async def add_attributes(
        self, design: Design, missing: Sequence[JobAttribute], codes: dict[str, str]
    ) -> dict[str, str]:
        """Add `missing` to `design` one at a time, each with the signature the previous add returned."""
        current = design
        for attribute in missing:
            added_code, current = await self.add_one(current, attribute)
            codes[attribute.field] = added_code
            self.say(f"created attribute {attribute.name}: {added_code}")
        self.design = current
        return codes

    async def add_one(self, design: Design, attribute: JobAttribute) -> tuple[str, Design]:
        self.doing = f'add attribute "{attribute.name}" to design {design.code}'
        conflicts = 0
        while True:
            signature = design.signature
            try:
                added = await self.alloy.add_design_attribute(
                    design.code, new_attribute(attribute), signature
                )
            except AlloyError as error:
                if not error.is_design_signature_mismatch or conflicts >= MAX_DESIGN_CONFLICTS:
                    raise
                conflicts += 1
                # Someone (or our own add, whose answer was lost) edited the design: read it again.
                design = await self.alloy.get_design(design.code)
                named = [
                    existing
                    for existing in design.attributes_named(attribute.name)
                    if existing.type.casefold() == attribute.type.value.casefold()
                ]
                if len(named) == 1:
                    return named[0].code, design
                continue
            after = added.design if added.design is not None else await self.alloy.get_design(design.code)
            return added.attribute_code, after


def run_setup(
    settings: Settings,
    *,
    design_name: str = DEFAULT_DESIGN_NAME,
    adopt: str | None = None,
    dry_run: bool = False,
    env_file: str | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run `alloysync setup`; returns the exit code (0 done, 1 failed, 2 unusable input)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    # Our own lines say everything; the client's retry logs would land on stdout among the settings.
    configure_logging("CRITICAL", settings.log_format, process="setup")
    if not settings.alloy_token_value():
        print(
            "alloysync setup: ALLOYSYNC_ALLOY_TOKEN is empty: "
            "set it to the API key of alloysync's Alloy user",
            file=err,
        )
        return EXIT_USAGE
    name = " ".join(design_name.split())
    if not name:
        print("alloysync setup: --design-name is empty: give the jobs design a name", file=err)
        return EXIT_USAGE
    options = SetupOptions(
        design_name=name,
        adopt=adopt.strip() if adopt else None,
        dry_run=dry_run,
        env_file=Path(env_file) if env_file else None,
    )
    try:
        lines = asyncio.run(_run(settings, options, err))
        if lines is None:
            return 0
        if options.env_file is not None and not options.dry_run:
            update_env_file(options.env_file, lines)
            print(f"wrote {len(lines)} settings to {options.env_file}", file=err)
        else:
            for key, value in lines.items():
                print(f"{key}={value}", file=out)
    except SetupFailed as failure:
        for line in failure.lines:
            print(f"alloysync setup: {line}", file=err)
        return EXIT_FAILED
    return 0


async def _run(settings: Settings, options: SetupOptions, progress: TextIO) -> dict[str, str] | None:
    client = AlloyClient.from_settings(settings)
    setup = SetupRun(client, settings, options, progress)
    try:
        async with client:
            lines = await setup.run()
    except AlloyError as error:
        raise SetupFailed(_explain(error, setup.doing, settings)) from None
    if lines is not None and setup.design is not None:
        _warn_about_result(settings, setup.design, lines, progress)
    return lines


async def _unless_not_found(call: Awaitable[T]) -> T | None:
    """What `call` returns, or None when Alloy answers that it has no such thing."""
    try:
        return await call
    except AlloyError as error:
        if error.is_not_found:
            return None
        raise


def _warn_about_result(
    settings: Settings, design: Design, lines: Mapping[str, str], progress: TextIO
) -> None:
    """Say what `alloysync check` will say about the printed codes (an adopted Message too short, ...)."""
    codes = JobAttributeCodes(**{attribute.field: lines[attribute.setting] for attribute in JOB_ATTRIBUTES})
    report = inspect_design(design, codes, message_max_chars=settings.message_max_chars)
    for line in report.problem_lines():
        print(f"warning: {line}", file=progress)


def _explain(error: AlloyError, doing: str, settings: Settings) -> str:
    """One line: what setup was doing, what went wrong, and what to do about it."""
    if error.is_unauthorized:
        return (
            f"could not {doing}: Alloy at {settings.alloy_url} rejected the API token: check "
            "ALLOYSYNC_ALLOY_TOKEN (the API key of alloysync's Alloy user)"
        )
    if error.is_forbidden:
        return (
            f"could not {doing}: the Alloy user of this API key is not allowed to ({error}): give that "
            "user a role that can manage designs (create designs and add attributes) in Alloy; API "
            "keys have no scopes of their own, they act with their user's roles"
        )
    return f"could not {doing}: {error}"
