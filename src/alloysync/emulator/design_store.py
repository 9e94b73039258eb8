"""The designs of one emulator: creating them, adding attributes, signatures, generated codes.

Through the API (`POST /api/design`, `POST /api/design/{code}/attribute`) codes are generated from
names (see `codes`) and adding an attribute needs the design's current signature; every change
gives the design a new signature. The admin API and the seeds may give codes of their own
(`designs_alloysyncJobs`) and skip the signature. The names of a design's own attributes are
unique within it, compared without case, so `alloysync setup` can map attributes by name (a design
may have an own attribute named like an interface attribute, e.g. a "Title" besides
`attributes_itemsTitle`). Listeners are told about every change (the state file).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from alloysync.emulator.attribute_options import AttributeOptions, LinkOptions
from alloysync.emulator.clock import utc_now
from alloysync.emulator.codes import (
    ObjectIds,
    attribute_code,
    design_camel_name,
    design_code,
    name_words,
    new_signature,
)
from alloysync.emulator.designs import ITEMS_INTERFACE, Design, DesignAttribute, DesignLooks, Metadata
from alloysync.emulator.errors import (
    Category,
    bad_request,
    design_not_found,
    design_signature_mismatch,
)

CODE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
INTERFACE_PREFIX = "designInterfaces_"

DesignListener = Callable[[], None]


@dataclass(frozen=True, kw_only=True)
class DesignDraft(DesignLooks):
    """What a design create request carries (`DesignCreateWebRequestModel`)."""

    name: str


@dataclass(frozen=True)
class AttributeDraft:
    """What an attribute create request carries (`DodiAttributeCreateWebRequestModel`) but the signature."""

    name: str
    options: AttributeOptions
    required: bool = False
    readonly: bool = False
    unique: bool = False
    tags: tuple[str, ...] = ()
    code: str | None = None  # admin API and seeds only: a code of one's own instead of a generated one


class DesignStore:
    def __init__(self) -> None:
        self._designs: dict[str, Design] = {}
        self._ids = ObjectIds()
        self._listeners: list[DesignListener] = []

    def add_listener(self, listener: DesignListener) -> None:
        self._listeners.append(listener)

    def __len__(self) -> int:
        return len(self._designs)

    def find(self, code: str) -> Design | None:
        return self._designs.get(code)

    def get(self, code: str) -> Design:
        design = self._designs.get(code)
        if design is None:
            raise design_not_found(code)
        return design

    def snapshot(self) -> list[Design]:
        """Every design in creation order (safe to read on another thread: designs are immutable)."""
        return list(self._designs.values())

    def create(
        self, draft: DesignDraft, attributes: Iterable[AttributeDraft] = (), code: str | None = None
    ) -> Design:
        """A new design with the given attributes (all or nothing); `code` None: a generated code."""
        _check_name(draft.name, "design")
        if code is None:
            code = design_code(draft.name, self._ids)
        elif not CODE_PATTERN.match(code):
            raise bad_request(f"design code {code!r} must be letters, digits and underscores")
        if code in self._designs:
            raise bad_request(
                f"there is already a design with the code {code}", error_data={"designCode": code}
            )
        now = utc_now()
        design = Design(
            code=code,
            name=draft.name.strip(),
            metadata=Metadata(created=now, last_edit=now, signature=new_signature()),
            **draft.looks(),
        )
        for attribute in attributes:
            design = self._with_attribute(design, attribute)
        self._designs[code] = design
        self._notify()
        return design

    def add_attribute(
        self, code: str, draft: AttributeDraft, signature: str | None
    ) -> tuple[Design, DesignAttribute]:
        """Add an attribute; `signature` must be the design's current one (None: the admin API, unchecked)."""
        current = self.get(code)
        if signature is not None and not secrets.compare_digest(signature, current.metadata.signature):
            raise design_signature_mismatch(code, signature)
        changed = self._with_attribute(current, draft)
        self._designs[code] = changed
        self._notify()
        return changed, changed.attributes[-1]

    def load(self, designs: Iterable[Design]) -> None:
        """Replace every design (loading the state file). Listeners are not told: nothing changed."""
        self._designs = {design.code: design for design in designs}

    def clear(self) -> None:
        self._designs = {}
        self._notify()

    def _with_attribute(self, design: Design, draft: AttributeDraft) -> Design:
        _check_name(draft.name, "attribute")
        wanted = draft.name.strip().casefold()
        same_name = next((a for a in design.attributes if a.name.strip().casefold() == wanted), None)
        if same_name is not None:
            raise bad_request(
                f"design {design.code} already has an attribute named {same_name.name!r} "
                f"({same_name.code}); attribute names are unique within a design",
                error_data={"designCode": design.code, "attributeCode": same_name.code},
            )
        code = draft.code
        if code is None:
            code = attribute_code(design_camel_name(design.code, design.name), draft.name, self._ids)
        elif not CODE_PATTERN.match(code) or design.attribute(code) is not None:
            raise bad_request(f"attribute code {code!r} is taken or not letters, digits and underscores")
        if isinstance(draft.options, LinkOptions):
            self._check_link_target(draft.options, design.code)
        attribute = DesignAttribute(
            code=code,
            name=draft.name.strip(),
            options=draft.options,
            parent=design.code,
            required=draft.required,
            readonly=draft.readonly,
            unique=draft.unique,
            tags=draft.tags,
        )
        metadata = replace(design.metadata, last_edit=utc_now(), signature=new_signature())
        return replace(design, attributes=(*design.attributes, attribute), metadata=metadata)

    def _check_link_target(self, options: LinkOptions, own_code: str) -> None:
        target = options.code
        if target == own_code or target in self._designs or target.startswith(INTERFACE_PREFIX):
            return
        raise bad_request(
            f"a Link attribute's options.code must name an existing design or a design interface "
            f"(such as {ITEMS_INTERFACE}); there is no design {target!r}",
            Category.DODI_ATTRIBUTE_OPTION_INVALID,
        )

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()


def _check_name(name: str, what: str) -> None:
    if not name_words(name):
        raise bad_request(
            f"a {what} name needs at least one letter or digit (the {what}'s code is made from it), "
            f"got {name!r}"
        )
