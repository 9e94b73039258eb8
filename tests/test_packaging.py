"""pyproject.toml: the licence is an SPDX expression, and the package data it lists exists (the Lua
scripts ship in a wheel)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_ROOTS = {"alloysync": REPO / "src" / "alloysync", "coinrequest": REPO / "coinrequest"}


def test_the_licence_is_an_spdx_string_that_the_required_setuptools_understands() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"  # a table is deprecated (warns on every install)
    setuptools = next(req for req in PYPROJECT["build-system"]["requires"] if req.startswith("setuptools"))
    match = re.fullmatch(r"setuptools>=(\d+)", setuptools)
    assert match is not None and int(match.group(1)) >= 77, setuptools  # PEP 639 licence strings


def test_every_package_data_pattern_names_files_that_exist() -> None:
    for package, patterns in PYPROJECT["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            assert list(PACKAGE_ROOTS[package].glob(pattern)), f"{package}: {pattern} matches no file"


def test_the_lua_scripts_are_package_data() -> None:
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["alloysync"]
    scripts = sorted((PACKAGE_ROOTS["alloysync"] / "state" / "lua").glob("*.lua"))
    assert scripts
    for script in scripts:
        relative = script.relative_to(PACKAGE_ROOTS["alloysync"])
        assert any(relative.match(pattern) for pattern in patterns), relative
