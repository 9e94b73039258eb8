"""Designs: their attributes, templates, geometry and collection rules, and their JSON (`DesignWebModel`).

A `Design` is immutable: a change (a new attribute) replaces it with a new one, with a new
signature. Every design implements Alloy's interface `designInterfaces_items`, which gives it the
attributes Title, Subtitle and Geometry under their plain codes (`attributes_itemsTitle`, ...),
parent `designInterfaces_items`, context `Core`. A design's own attributes have the design as
parent and context `Customer`.

The title and subtitle templates use Alloy's mustache notation (`"Job-{{attributes_jobNumber}}"`);
an item's `title` and `subtitle` are rendered from them when the item is sent. Without a template,
an item's title is the value of `attributes_itemsTitle` (and its subtitle that of
`attributes_itemsSubtitle`). The emulator does not write rendered titles into the item's
attribute list.

`to_json` renders a design in the shape real Alloy sends (`GET /api/design/{code}`: name, code,
context, implements, attributes, metadata with the signature, `dodiTitle`, `geometryAllows`, ...);
`to_state`/`from_state` are the `--state` file's form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alloysync.emulator.attribute_options import (
    GEOMETRY_TYPES,
    AttributeOptions,
    AttributeType,
    GeoJsonOptions,
    StringOptions,
    Subject,
    parse_options,
)
from alloysync.emulator.clock import format_timestamp, parse_timestamp
from alloysync.emulator.errors import AlloyError

ITEMS_INTERFACE = "designInterfaces_items"
TITLE_CODE = "attributes_itemsTitle"
SUBTITLE_CODE = "attributes_itemsSubtitle"
GEOMETRY_CODE = "attributes_itemsGeometry"
DEFAULT_COLOUR = "#3d8fbd"  # Alloy's defaults when neither the design nor an interface sets one
DEFAULT_ICON = "icon-shape-circle"
DEFAULTED_PARENT = "engine_defaultedProperties"
DEFAULT_COLLECTIONS = ("Live",)
API_USERNAME = "emulator.api.user"  # the user every request acts as (the one API key's user)
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


@dataclass(frozen=True)
class DesignAttribute:
    """One attribute of a design (`DodiAttributeWebModel`)."""

    code: str
    name: str
    options: AttributeOptions
    parent: str
    context: str = "Customer"
    required: bool = False
    readonly: bool = False
    unique: bool = False
    tags: tuple[str, ...] = ()

    @property
    def type(self) -> AttributeType:
        return self.options.type

    @property
    def subject(self) -> Subject:
        return Subject(self.code, self.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "code": self.code,
            "parent": self.parent,
            "context": self.context,
            "type": str(self.type),
            "required": self.required,
            "readonly": self.readonly,
            "unique": self.unique,
            "tags": list(self.tags),
            "options": self.options.to_json(),
        }

    @classmethod
    def from_json(cls, raw: Any) -> DesignAttribute:
        """An attribute from its `to_json` form (the state file); ValueError when it is not one."""
        if not isinstance(raw, dict):
            raise ValueError("a design attribute must be a JSON object")
        code, name, parent, context = (raw.get(key) for key in ("code", "name", "parent", "context"))
        if not all(isinstance(text, str) and text for text in (code, name, parent, context)):
            raise ValueError("a design attribute needs code, name, parent and context strings")
        flags = [raw.get(key, False) for key in ("required", "readonly", "unique")]
        tags = raw.get("tags") or []
        if not all(isinstance(flag, bool) for flag in flags) or not all(isinstance(t, str) for t in tags):
            raise ValueError(f"attribute {code}: required/readonly/unique must be booleans, tags strings")
        try:
            options = parse_options(raw.get("options"))
        except AlloyError as error:
            raise ValueError(f"attribute {code}: {error.message}") from None
        return cls(
            code=str(code),
            name=str(name),
            options=options,
            parent=str(parent),
            context=str(context),
            required=flags[0],
            readonly=flags[1],
            unique=flags[2],
            tags=tuple(tags),
        )


ITEMS_INTERFACE_ATTRIBUTES: tuple[DesignAttribute, ...] = (
    DesignAttribute(GEOMETRY_CODE, "Geometry", GeoJsonOptions(), ITEMS_INTERFACE, "Core"),
    DesignAttribute(TITLE_CODE, "Title", StringOptions(), ITEMS_INTERFACE, "Core", tags=("Computed",)),
    DesignAttribute(SUBTITLE_CODE, "Subtitle", StringOptions(), ITEMS_INTERFACE, "Core", tags=("Computed",)),
)


@dataclass(frozen=True)
class Metadata:
    """Who created and last changed a design, when, and its current signature (`MetadataWebModel`)."""

    created: datetime
    last_edit: datetime
    signature: str
    created_by: str = API_USERNAME
    last_edit_by: str = API_USERNAME

    def to_json(self) -> dict[str, Any]:
        return {
            "createdDate": format_timestamp(self.created),
            "createdUserUsername": self.created_by,
            "lastEditDate": format_timestamp(self.last_edit),
            "lastEditUserUsername": self.last_edit_by,
            "signature": self.signature,
        }


@dataclass(frozen=True, kw_only=True)
class DesignLooks:
    """What a design sets besides its attributes (None: Alloy's default): the title and subtitle
    templates, colour, icon, geometry, and the collections its items may be in."""

    title: str | None = None  # mustache templates
    subtitle: str | None = None
    colour: str | None = None
    icon: str | None = None
    geometry_required: bool | None = None
    geometry_allows: tuple[str, ...] | None = None
    collections: tuple[str, ...] | None = None

    def looks(self) -> dict[str, Any]:
        """These fields by name (to make a design of a draft)."""
        return {name: getattr(self, name) for name in DesignLooks.__dataclass_fields__}

    def looks_state(self) -> dict[str, Any]:
        """These fields as the state file keeps them (lists for tuples)."""
        as_list = {"geometryAllows": self.geometry_allows, "collections": self.collections}
        return {
            **{name: getattr(self, name) for name in ("title", "subtitle", "colour", "icon")},
            "geometryRequired": self.geometry_required,
            **{key: None if value is None else list(value) for key, value in as_list.items()},
        }


@dataclass(frozen=True, kw_only=True)
class Design(DesignLooks):
    """One design. `attributes` are its own, in creation order; the interface's come after them."""

    code: str
    name: str
    metadata: Metadata
    attributes: tuple[DesignAttribute, ...] = ()
    context: str = "Customer"
    _by_code: Mapping[str, DesignAttribute] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_code = {attribute.code: attribute for attribute in self.all_attributes}
        object.__setattr__(self, "_by_code", by_code)

    @property
    def all_attributes(self) -> tuple[DesignAttribute, ...]:
        own = {attribute.code for attribute in self.attributes}
        return self.attributes + tuple(a for a in ITEMS_INTERFACE_ATTRIBUTES if a.code not in own)

    def attribute(self, code: str) -> DesignAttribute | None:
        return self._by_code.get(code)

    @property
    def allowed_collections(self) -> tuple[str, ...]:
        return self.collections or DEFAULT_COLLECTIONS

    @property
    def allowed_geometries(self) -> tuple[str, ...]:
        return self.geometry_allows or GEOMETRY_TYPES

    def render_title(self, values: Mapping[str, Any]) -> str:
        return _render(self.title, values, TITLE_CODE)

    def render_subtitle(self, values: Mapping[str, Any]) -> str:
        return _render(self.subtitle, values, SUBTITLE_CODE)

    def to_json(self) -> dict[str, Any]:
        """The design as Alloy sends it (`DesignWebModel`)."""
        document: dict[str, Any] = {
            "name": self.name,
            "code": self.code,
            "context": self.context,
            "implements": [{"code": ITEMS_INTERFACE, "parent": self.code, "context": self.context}],
            "attributes": [attribute.to_json() for attribute in self.all_attributes],
            "metadata": self.metadata.to_json(),
        }
        for key, value in (("dodiTitle", self.title), ("dodiSubtitle", self.subtitle)):
            if value is not None:
                document[key] = {"value": value, "parent": self.code}
        for key, value in (("dodiColour", self.colour), ("dodiIcon", self.icon)):
            if value is not None:
                document[key] = {"value": value, "parent": self.code}
        document["geometryRequired"] = {
            "value": bool(self.geometry_required),
            "parent": self.code if self.geometry_required is not None else DEFAULTED_PARENT,
        }
        document["geometryAllows"] = {
            "values": list(self.allowed_geometries),
            "parent": self.code if self.geometry_allows is not None else DEFAULTED_PARENT,
        }
        document["dodiCollections"] = {
            "values": list(self.allowed_collections),
            "parent": self.code if self.collections is not None else DEFAULTED_PARENT,
        }
        document["discriminator"] = "DesignWebModel"
        return document

    def operations_summary(self) -> dict[str, Any]:
        """What the API key's user may do (`DodiOperationsSummaryWebModel`): everything, except
        changing the interface's attributes."""
        return {
            "canWrite": True,
            "canDelete": True,
            "canReadItems": True,
            "canEditItems": True,
            "canDeleteItems": True,
            "canCreateItems": True,
            "attributeOperationsSummary": [
                {
                    "attributeCode": attribute.code,
                    "canWriteDodiAttribute": attribute.context == "Customer",
                    "canDeleteDodiAttribute": attribute.context == "Customer",
                    "canWriteItemAttribute": True,
                }
                for attribute in self.all_attributes
            ],
        }

    def with_operations(self) -> dict[str, Any]:
        """`DesignWithOperationsSummaryWebResponseModel`: `{"design", "operationsSummary"}`."""
        return {"design": self.to_json(), "operationsSummary": self.operations_summary()}

    def to_state(self) -> dict[str, Any]:
        identity = {"code": self.code, "name": self.name, "context": self.context}
        own = {"attributes": [attribute.to_json() for attribute in self.attributes]}
        return {**identity, **self.looks_state(), **own, "metadata": self.metadata.to_json()}

    @classmethod
    def from_state(cls, raw: Any) -> Design:
        """A design from its `to_state` form; ValueError when it is not one."""
        if not isinstance(raw, dict):
            raise ValueError("a design must be a JSON object")
        code, name = raw.get("code"), raw.get("name")
        if not isinstance(code, str) or not code or not isinstance(name, str):
            raise ValueError("a design needs code and name strings")
        metadata = raw.get("metadata")
        if not isinstance(metadata, dict):
            raise ValueError(f"design {code}: metadata must be an object")
        created = parse_timestamp(str(metadata.get("createdDate")))
        last_edit = parse_timestamp(str(metadata.get("lastEditDate")))
        signature = metadata.get("signature")
        if created is None or last_edit is None or not isinstance(signature, str):
            raise ValueError(f"design {code}: metadata needs createdDate, lastEditDate and signature")
        texts = {key: raw.get(key) for key in ("title", "subtitle", "colour", "icon")}
        if not all(value is None or isinstance(value, str) for value in texts.values()):
            raise ValueError(f"design {code}: title, subtitle, colour and icon must be strings or null")
        lists = {key: raw.get(key) for key in ("geometryAllows", "collections")}
        if not all(
            v is None or (isinstance(v, list) and all(isinstance(e, str) for e in v)) for v in lists.values()
        ):
            raise ValueError(
                f"design {code}: geometryAllows and collections must be lists of strings or null"
            )
        geometry_required = raw.get("geometryRequired")
        if geometry_required is not None and not isinstance(geometry_required, bool):
            raise ValueError(f"design {code}: geometryRequired must be a boolean or null")
        return cls(
            code=code,
            name=name,
            metadata=Metadata(
                created=created,
                last_edit=last_edit,
                signature=signature,
                created_by=str(metadata.get("createdUserUsername") or API_USERNAME),
                last_edit_by=str(metadata.get("lastEditUserUsername") or API_USERNAME),
            ),
            attributes=tuple(DesignAttribute.from_json(entry) for entry in raw.get("attributes") or []),
            title=texts["title"],
            subtitle=texts["subtitle"],
            colour=texts["colour"],
            icon=texts["icon"],
            geometry_required=geometry_required,
            geometry_allows=None if lists["geometryAllows"] is None else tuple(lists["geometryAllows"]),
            collections=None if lists["collections"] is None else tuple(lists["collections"]),
            context=str(raw.get("context") or "Customer"),
        )


def _render(template: str | None, values: Mapping[str, Any], fallback_code: str) -> str:
    if template is None:
        return _as_text(values.get(fallback_code))
    return _PLACEHOLDER.sub(lambda match: _as_text(values.get(match.group(1))), template)


def _as_text(value: Any) -> str:
    """A value as it reads in a rendered title: strings as they are, whole numbers without `.0`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(_as_text(entry) for entry in value)
    if isinstance(value, dict):
        return ""
    return str(value)
