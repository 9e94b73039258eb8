"""A second design for the emulator tests, defined with codes of its own through the admin API."""

from __future__ import annotations

from tests.support.emulator import EmulatorProcess

OTHER = "designs_other"
ANY = "attributes_x"  # Json: takes any value
NUMBER = "attributes_n"
TEXT = "attributes_text"


def define_other(process: EmulatorProcess) -> str:
    """Define `designs_other` (attributes_x Json, attributes_n Number, attributes_text String)."""
    process.define_design(OTHER, {ANY: "Json", NUMBER: "Number", TEXT: "String"}, name="Other things")
    return OTHER
