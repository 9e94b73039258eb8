"""Identifiers Alloy generates: item ids, signatures, and design and attribute codes made from names.

Alloy's ids and signatures are 24 hex digits shaped like MongoDB ObjectIds. Codes of designs and
attributes a customer creates are generated from their names, with an ObjectId suffix:
`designs_customerReportDefect_62e43ee75039cb015e3287e9`,
`attributes_customerReportDefectCRMReference_62e43eea0d2c1a0153b1c561` (the design's camel-case
name, then the attribute's). A name is split into words at every character that is not an ASCII
letter or digit; each word gets an upper-case first letter (the rest is kept as written, so "CRM"
stays "CRM"), and a design's name starts lower-case ("NCC_Lighting_Unit" → `nCCLightingUnit`).
"""

from __future__ import annotations

import itertools
import re
import secrets
import time

HEX24 = re.compile(r"^[0-9a-f]{24}$")
_WORD = re.compile(r"[A-Za-z0-9]+")
DESIGN_PREFIX = "designs_"
ATTRIBUTE_PREFIX = "attributes_"
_GENERATED_DESIGN_CODE = re.compile(r"^designs_([A-Za-z0-9]+)(?:_[0-9a-f]{24})?$")


class ObjectIds:
    """24-hex ids shaped like MongoDB ObjectIds: seconds, a process tag, a counter."""

    def __init__(self) -> None:
        self._process_tag = secrets.token_bytes(5)
        self._counter = itertools.count(secrets.randbelow(1 << 24))

    def new(self) -> str:
        seconds = int(time.time()).to_bytes(4, "big")
        counter = (next(self._counter) % (1 << 24)).to_bytes(3, "big")
        return (seconds + self._process_tag + counter).hex()


def new_signature() -> str:
    return secrets.token_hex(12)


def name_words(name: str) -> list[str]:
    """The words of a name that make up its code; empty when it has no ASCII letter or digit."""
    return _WORD.findall(name)


def pascal_case(name: str) -> str:
    """`"Last run started"` → `"LastRunStarted"`, `"CRM reference"` → `"CRMReference"`."""
    return "".join(word[0].upper() + word[1:] for word in name_words(name))


def camel_case(name: str) -> str:
    """`"alloysync jobs"` → `"alloysyncJobs"`, `"NCC_Lighting_Unit"` → `"nCCLightingUnit"`."""
    joined = pascal_case(name)
    return joined[:1].lower() + joined[1:]


def design_code(name: str, ids: ObjectIds) -> str:
    return f"{DESIGN_PREFIX}{camel_case(name)}_{ids.new()}"


def attribute_code(design_camel_name: str, attribute_name: str, ids: ObjectIds) -> str:
    return f"{ATTRIBUTE_PREFIX}{design_camel_name}{pascal_case(attribute_name)}_{ids.new()}"


def design_camel_name(code: str, name: str) -> str:
    """The camel-case design name inside a design's code, from which its attribute codes start.

    `designs_alloysyncJobs` and `designs_alloysyncJobs_62e4...` give `alloysyncJobs`; a code of
    another shape falls back to the camel-cased design name.
    """
    match = _GENERATED_DESIGN_CODE.match(code)
    return match.group(1) if match else camel_case(name)
