"""Bearer-token authentication: 401 with an Alloy error body for anything but the right token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.support.emulator import EmulatorProcess

ERROR_KEYS = {"category", "errorCode", "message", "httpStatusCode", "errorData"}


def _raw_get(url: str, headers: dict[str, str]) -> tuple[int, str, dict[str, object]]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.headers.get("Content-Type", ""), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), json.loads(error.read())


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "test-token"},
        {"Authorization": "Basic test-token"},
        {"Authorization": "Bearer test-token-and-more"},
    ],
    ids=["missing", "wrong", "empty", "no-scheme", "basic", "longer"],
)
def test_api_refuses_a_missing_or_wrong_token(emu: EmulatorProcess, headers: dict[str, str]) -> None:
    status, content_type, body = _raw_get(f"{emu.url}/api/item/{'0' * 24}", headers)
    assert status == 401
    assert content_type.startswith("application/json")
    assert set(body) == ERROR_KEYS
    assert body["httpStatusCode"] == 401
    assert "Authorization: Bearer" in str(body["message"])


def test_the_right_token_passes(emu: EmulatorProcess) -> None:
    status, _, body = _raw_get(f"{emu.url}/api/item/{'0' * 24}", {"Authorization": "bearer test-token"})
    assert status == 404  # authenticated; the item just does not exist
    assert body["errorCode"] == "ItemNotFound"


def test_admin_needs_the_token_but_health_does_not(emu: EmulatorProcess) -> None:
    status, _ = emu.request("GET", "/_emulator/stats", auth=False)
    assert status == 401
    status, body = emu.request("GET", "/_emulator/health", auth=False)
    assert (status, body) == (200, {"ok": True})


def test_unauthenticated_requests_are_counted_in_stats(emu: EmulatorProcess) -> None:
    emu.request("POST", "/api/aqs/query", {"aqs": {}}, auth=False)
    assert emu.stats()["query"] == {"401": 1}


def test_an_empty_token_setting_exits_2_with_a_hint(tmp_path: object) -> None:
    env = {**os.environ, "ALLOYSYNC_ALLOY_TOKEN": ""}
    result = subprocess.run(
        [sys.executable, "-m", "alloysync", "emulator", "--port", "0", "--seed", "none"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ALLOYSYNC_ALLOY_TOKEN" in lines[0]


def test_the_token_never_reaches_the_log(emu: EmulatorProcess) -> None:
    emu.create_item("designs_alloysyncJobs", {})
    emu.request("GET", f"/api/item/{'0' * 24}")
    assert emu.token not in emu.read_log()
