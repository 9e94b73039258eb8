"""Alloy designs as pydantic models, and the request bodies that create designs and attributes.

This module owns the shape of Alloy's design documents as its published API models describe them
(`DesignWithOperationsSummaryWebResponseModel`, `DodiWebModel`, `DodiAttributeWebModel`,
`DodiAttributeOptions*WebModel`, `MetadataWebModel`, `DodiAttributeCreateWebRequestModel`,
`DodiAttributeCreateWebResponseModel`): a `Design` with its `DesignAttribute` list and its
signature, and `NewAttribute`, what `POST /api/design/{code}/attribute` takes.

Like `models`, the response models are lenient: a design document carries much more than we read
(`implements`, `dodiTitle`, `geometryAllows`, `stencil`, ...); unknown fields are kept, and missing
optional ones get defaults. The wire names are kept (`decimalPlaces`, `defaultValue`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "AttributeAdded",
    "AttributeOptions",
    "Design",
    "DesignAttribute",
    "DesignMetadata",
    "NewAttribute",
    "attribute_options",
]

# `discriminator` of each attribute type's options model.
OPTIONS_DISCRIMINATORS: dict[str, str] = {
    "String": "DodiAttributeOptionsStringWebModel",
    "Number": "DodiAttributeOptionsNumberWebModel",
    "Boolean": "DodiAttributeOptionsBooleanWebModel",
    "DateTime": "DodiAttributeOptionsDateTimeWebModel",
    "Date": "DodiAttributeOptionsDateWebModel",
    "Json": "DodiAttributeOptionsJsonWebModel",
    "Link": "DodiAttributeOptionsLinkWebModel",
}


def _none_as_empty_list(value: Any) -> Any:
    return [] if value is None else value


def _none_as_empty_dict(value: Any) -> Any:
    return {} if value is None else value


def _none_as_false(value: Any) -> Any:
    return False if value is None else value


Flag = Annotated[bool, BeforeValidator(_none_as_false)]


class AttributeOptions(BaseModel):
    """An attribute's `options`: type-specific limits. Only the fields we read are named."""

    model_config = ConfigDict(extra="allow")

    discriminator: str | None = None
    min: Any = None
    max: Any = None  # String: the longest value; Number: the largest; DateTime: the latest (text)
    decimalPlaces: Any = None
    precision: str | None = None
    defaultValue: Any = None


class DesignAttribute(BaseModel):
    """One attribute of a design (`DodiAttributeWebModel`)."""

    model_config = ConfigDict(extra="allow")

    code: str
    name: str = ""
    type: str = ""
    parent: str | None = None  # the design or interface that defines it
    context: str | None = None  # Customer, Core or Module
    required: Flag = False
    readonly: Flag = False
    unique: Flag = False
    tags: Annotated[list[str], BeforeValidator(_none_as_empty_list)] = Field(default_factory=list)
    options: Annotated[AttributeOptions, BeforeValidator(_none_as_empty_dict)] = Field(
        default_factory=AttributeOptions
    )

    @property
    def max_length(self) -> int | None:
        """A String attribute's maximum length, when the design sets one."""
        limit = self.options.max
        if self.type != "String" or isinstance(limit, bool) or not isinstance(limit, int | float):
            return None
        return int(limit)


class DesignMetadata(BaseModel):
    """`MetadataWebModel`: who created and last edited the design, and its current signature."""

    model_config = ConfigDict(extra="allow")

    signature: str | None = None
    createdDate: str | None = None
    createdUserUsername: str | None = None
    lastEditDate: str | None = None
    lastEditUserUsername: str | None = None


class DesignImplements(BaseModel):
    """`DodiImplementsWebModel`: an interface the design implements (e.g. `designInterfaces_items`)."""

    model_config = ConfigDict(extra="allow")

    code: str
    parent: str | None = None


class Design(BaseModel):
    """An Alloy design (`DodiWebModel`). Unknown fields are accepted and kept."""

    model_config = ConfigDict(extra="allow")

    code: str
    name: str = ""
    context: str | None = None
    implements: Annotated[list[DesignImplements], BeforeValidator(_none_as_empty_list)] = Field(
        default_factory=list
    )
    attributes: Annotated[list[DesignAttribute], BeforeValidator(_none_as_empty_list)] = Field(
        default_factory=list
    )
    metadata: DesignMetadata | None = None

    @property
    def signature(self) -> str | None:
        """The signature to send with the next edit of the design (a new attribute, ...)."""
        return self.metadata.signature if self.metadata is not None else None

    def attribute(self, code: str) -> DesignAttribute | None:
        """The attribute with exactly this code, or None."""
        for attribute in self.attributes:
            if attribute.code == code:
                return attribute
        return None

    def attributes_named(self, name: str) -> list[DesignAttribute]:
        """The attributes whose name is `name`, ignoring case and surrounding spaces."""
        wanted = normalise_name(name)
        return [attribute for attribute in self.attributes if normalise_name(attribute.name) == wanted]


def normalise_name(name: str) -> str:
    """How attribute and design names are compared: trimmed, inner spaces collapsed, case-folded."""
    return " ".join(name.split()).casefold()


def attribute_options(attribute_type: str, *, max_length: int | None = None) -> dict[str, Any]:
    """The `options` object for a new attribute of `attribute_type`.

    String takes `max_length` as its `max`; Number is a whole, non-negative count (`decimalPlaces`
    0, `min` 0: alloysync's numbers are run counts); DateTime keeps milliseconds, as alloysync
    writes them.
    """
    discriminator = OPTIONS_DISCRIMINATORS.get(attribute_type)
    if discriminator is None:
        raise ValueError(f"no options model for attribute type {attribute_type!r}")
    options: dict[str, Any] = {"discriminator": discriminator}
    if attribute_type == "String" and max_length is not None:
        options["max"] = max_length
    elif attribute_type == "Number":
        options.update(decimalPlaces=0, min=0)
    elif attribute_type == "DateTime":
        options["precision"] = "Milliseconds"
    return options


@dataclass(frozen=True)
class NewAttribute:
    """An attribute to add to a design (`DodiAttributeCreateWebRequestModel` without the signature).

    The request model has no type field: Alloy takes the type from the options' `discriminator`
    (see `attribute_options`); `type` is kept here to describe the attribute.
    """

    name: str
    type: str
    options: Mapping[str, Any]
    required: bool = False
    readonly: bool = False
    unique: bool = False
    tags: tuple[str, ...] = field(default=())

    def wire(self, signature: str | None) -> dict[str, Any]:
        """The request body, with the design's current `signature`."""
        return {
            "name": self.name,
            "required": self.required,
            "readonly": self.readonly,
            "unique": self.unique,
            "tags": list(self.tags),
            "options": dict(self.options),
            "signature": signature,
        }


@dataclass(frozen=True)
class AttributeAdded:
    """The answer to adding an attribute: its generated code and the design as it now is."""

    attribute_code: str
    design: Design | None  # None when the answer did not include the design
