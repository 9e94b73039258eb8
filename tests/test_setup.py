"""`alloysync setup`: the attribute mapping and the .env writer (pure), then the command end to end as a
real process against a real emulator (`--seed empty`: a tenant with no jobs design)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from alloysync.alloy.client import AlloyClient
from alloysync.alloy.designs import Design
from alloysync.local.redis_server import RedisServer, free_port
from alloysync.model.design import BY_FIELD, JOB_ATTRIBUTES, TITLE_CODE
from alloysync.model.setup_plan import map_attributes
from alloysync.settings import JobAttributeCodes, Settings
from alloysync.setup import SetupFailed, SetupOptions, SetupRun, update_env_file
from tests.support.emulator import EmulatorProcess

REPO = Path(__file__).resolve().parents[1]
DESIGN = "designs_jobs_65a1b2c3d4e5f60718293a4b"


def _design(*attributes: tuple[str, str, str]) -> Design:
    """A design holding (name, code, type) attributes."""
    return Design.model_validate(
        {
            "code": DESIGN,
            "name": "Jobs",
            "attributes": [{"name": name, "code": code, "type": kind} for name, code, kind in attributes],
            "metadata": {"signature": "s"},
        }
    )


# --- mapping an existing design's attributes (pure) ----------------------------------------


def test_attributes_are_mapped_by_name_trimmed_and_without_case() -> None:
    design = _design(
        ("Title", TITLE_CODE, "String"),
        ("  STATUS ", "attributes_jobsStatus_1", "String"),
        ("run   requested", "attributes_jobsRunRequested_2", "Boolean"),
        ("Something else", "attributes_jobsOther_3", "Number"),
    )
    mapping = map_attributes(design, JobAttributeCodes())

    assert mapping.conflicts == []
    assert mapping.found == {
        "title": TITLE_CODE,
        "status": "attributes_jobsStatus_1",
        "run_requested": "attributes_jobsRunRequested_2",
    }
    assert mapping.how["title"] == "Alloy's interface attribute"
    assert [attribute.field for attribute in mapping.missing] == [
        attribute.field for attribute in JOB_ATTRIBUTES if attribute.field not in mapping.found
    ]


def test_a_configured_code_on_the_design_wins_over_the_name() -> None:
    design = _design(
        ("Status", "attributes_jobsStatus_1", "String"),
        ("Job state", "attributes_jobsState_2", "String"),
    )
    mapping = map_attributes(design, JobAttributeCodes(status="attributes_jobsState_2"))
    assert mapping.found["status"] == "attributes_jobsState_2"
    assert mapping.how["status"] == "configured code"


def test_a_title_attribute_is_used_only_where_the_interface_title_is_missing() -> None:
    mapping = map_attributes(_design(("Title", "attributes_jobsTitle_1", "String")), JobAttributeCodes())
    assert mapping.found["title"] == "attributes_jobsTitle_1" and mapping.how["title"] == "by name"
    mapping = map_attributes(_design(), JobAttributeCodes())
    assert "title" in [attribute.field for attribute in mapping.missing]


def test_wrong_types_and_ambiguous_names_are_conflicts_naming_the_attribute() -> None:
    design = _design(
        ("Status", "attributes_jobsStatus_1", "Number"),
        ("Notify", "attributes_jobsNotify_2", "String"),
        ("notify", "attributes_jobsNotify_3", "String"),
    )
    mapping = map_attributes(design, JobAttributeCodes())

    assert len(mapping.conflicts) == 2
    status, notify = mapping.conflicts
    assert '"Status" (attributes_jobsStatus_1)' in status and "Number" in status and "String" in status
    assert "ALLOYSYNC_ATTRIBUTES__STATUS" in status
    assert "attributes_jobsNotify_2, attributes_jobsNotify_3" in notify
    assert "ALLOYSYNC_ATTRIBUTES__NOTIFY" in notify
    assert "status" not in mapping.found and "notify" not in mapping.found


def test_two_settings_never_share_one_attribute() -> None:
    design = _design(("Status", "attributes_jobsStatus_1", "String"))
    mapping = map_attributes(design, JobAttributeCodes(message="attributes_jobsStatus_1"))
    assert mapping.found["status"] == "attributes_jobsStatus_1" and "message" not in mapping.found
    assert (
        len(mapping.conflicts) == 1
        and "would both use attribute attributes_jobsStatus_1" in mapping.conflicts[0]
    )


# --- the .env writer (pure) ---------------------------------------------------------------------


def test_env_file_lines_are_updated_in_place_and_others_kept(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# alloysync\n"
        "ALLOYSYNC_ALLOY_TOKEN=tok-keep-me\n"
        "export ALLOYSYNC_JOBS_DESIGN = designs_old\n"
        "\n"
        "ALLOYSYNC_ATTRIBUTES__STATUS=attributes_old\n"
        "OTHER=1\n"
        "alloysync_jobs_design=designs_older_duplicate\n"
    )
    env.chmod(0o640)

    update_env_file(
        env,
        {
            "ALLOYSYNC_JOBS_DESIGN": "designs_new",
            "ALLOYSYNC_ATTRIBUTES__STATUS": "attributes_new",
            "ALLOYSYNC_ATTRIBUTES__MESSAGE": "attributes_msg",
        },
    )

    assert env.read_text().splitlines() == [
        "# alloysync",
        "ALLOYSYNC_ALLOY_TOKEN=tok-keep-me",
        "ALLOYSYNC_JOBS_DESIGN=designs_new",
        "",
        "ALLOYSYNC_ATTRIBUTES__STATUS=attributes_new",
        "OTHER=1",
        "ALLOYSYNC_ATTRIBUTES__MESSAGE=attributes_msg",
    ]
    assert env.stat().st_mode & 0o777 == 0o640


def test_a_new_env_file_is_private(tmp_path: Path) -> None:
    env = tmp_path / "new.env"
    update_env_file(env, {"ALLOYSYNC_JOBS_DESIGN": "designs_x"})
    assert env.read_text() == "ALLOYSYNC_JOBS_DESIGN=designs_x\n"
    assert env.stat().st_mode & 0o777 == 0o600


def test_an_env_file_that_is_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SetupFailed, match="is a directory"):
        update_env_file(tmp_path, {"ALLOYSYNC_JOBS_DESIGN": "designs_x"})


# --- the command against the emulator -----------------------------------------------------------


def alloysync(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALLOYSYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "alloysync", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        check=False,
    )


def settings_from(stdout: str) -> dict[str, str]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    pairs = dict(line.split("=", 1) for line in lines)
    assert len(pairs) == len(lines), "every stdout line is one KEY=value setting"
    return pairs


def expected_keys() -> list[str]:
    return ["ALLOYSYNC_JOBS_DESIGN", *(attribute.setting for attribute in JOB_ATTRIBUTES)]


TOKEN = "tok-setup-5ecret-9f2c71"
GENERATED_DESIGN = re.compile(r"^designs_alloysyncJobs_[0-9a-f]{24}$")
GENERATED_ATTRIBUTE = re.compile(r"^attributes_alloysyncJobs[A-Za-z]+_[0-9a-f]{24}$")


@pytest.fixture
def tenant(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """A new Alloy tenant: no jobs design (`--seed empty`)."""
    process = EmulatorProcess(tmp_path / "emulator", token=TOKEN, seed="empty")
    process.start()
    yield process
    process.stop()


def setup_command(
    tenant: EmulatorProcess, *args: str, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    result = alloysync(
        "setup", *args, cwd=cwd, ALLOYSYNC_ALLOY_URL=tenant.url, ALLOYSYNC_ALLOY_TOKEN=tenant.token, **env
    )
    assert TOKEN not in result.stdout + result.stderr, "the token is never printed"
    return result


def designs(tenant: EmulatorProcess) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = tenant.admin("GET", "designs")["designs"]
    return listed


def writes(tenant: EmulatorProcess) -> int:
    return sum(tenant.stats().get("write", {}).values())


def test_setup_on_an_empty_tenant_creates_the_design_then_check_passes(
    tenant: EmulatorProcess, tmp_path: Path, redis_server: RedisServer
) -> None:
    result = setup_command(tenant, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    printed = settings_from(result.stdout)
    assert list(printed) == expected_keys()
    assert GENERATED_DESIGN.match(printed["ALLOYSYNC_JOBS_DESIGN"])
    assert printed["ALLOYSYNC_ATTRIBUTES__TITLE"] == TITLE_CODE  # Alloy's own interface attribute
    for attribute in JOB_ATTRIBUTES[1:]:
        assert GENERATED_ATTRIBUTE.match(printed[attribute.setting]), attribute.setting
    assert "created design" in result.stderr and "created 1 design and 24 attribute(s)" in result.stderr

    (design,) = designs(tenant)
    assert design["code"] == printed["ALLOYSYNC_JOBS_DESIGN"] and design["name"] == "alloysync jobs"
    by_code = {attribute["code"]: attribute for attribute in design["attributes"]}
    for attribute in JOB_ATTRIBUTES:
        created = by_code[printed[attribute.setting]]
        assert created["type"] == attribute.type.value
        if attribute.field != "title":
            assert created["name"] == attribute.name
            assert created["options"].get("max") == attribute.max_length
    assert by_code[printed["ALLOYSYNC_ATTRIBUTES__MESSAGE"]]["options"]["max"] >= 500  # the message limit

    check = alloysync("check", cwd=tmp_path, **check_env(tenant, redis_server, printed))
    assert check.returncode == 0, check.stderr
    assert check.stderr == ""
    assert f"ok       design: {len(JOB_ATTRIBUTES)} of {len(JOB_ATTRIBUTES)} job attributes are usable" in (
        check.stdout
    )
    assert "off " not in check.stdout
    assert TOKEN not in check.stdout + check.stderr


def check_env(tenant: EmulatorProcess, redis_server: RedisServer, printed: dict[str, str]) -> dict[str, str]:
    return {
        "ALLOYSYNC_ALLOY_URL": tenant.url,
        "ALLOYSYNC_ALLOY_TOKEN": tenant.token,
        "ALLOYSYNC_REDIS_URL": redis_server.url,
        **printed,
    }


def test_a_second_run_creates_nothing_and_prints_the_same_lines(
    tenant: EmulatorProcess, tmp_path: Path
) -> None:
    first = setup_command(tenant, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = (writes(tenant), designs(tenant))

    # Found by name (the settings were not applied yet) ...
    second = setup_command(tenant, cwd=tmp_path)
    # ... and by the configured design, once they are.
    printed = settings_from(first.stdout)
    third = setup_command(tenant, cwd=tmp_path, ALLOYSYNC_JOBS_DESIGN=printed["ALLOYSYNC_JOBS_DESIGN"])

    for again in (second, third):
        assert again.returncode == 0, again.stderr
        assert again.stdout == first.stdout
        assert "nothing to create" in again.stderr and "created" not in again.stderr
    assert "(found by name)" in second.stderr and "(ALLOYSYNC_JOBS_DESIGN)" in third.stderr
    assert (writes(tenant), designs(tenant)) == before


def test_dry_run_lists_what_it_would_create_and_creates_nothing(
    tenant: EmulatorProcess, tmp_path: Path
) -> None:
    result = setup_command(tenant, "--dry-run", "--design-name", "Council jobs", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # no codes exist yet, so no settings
    assert 'would create design "Council jobs"' in result.stderr
    assert result.stderr.count("would create attribute") == len(JOB_ATTRIBUTES) - 1
    assert 'would create attribute "Message" (String, max 4000) for ALLOYSYNC_ATTRIBUTES__MESSAGE' in (
        result.stderr
    )
    assert designs(tenant) == [] and writes(tenant) == 0

    created = setup_command(tenant, "--design-name", "Council jobs", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    writes_after_setup = writes(tenant)
    again = setup_command(tenant, "--dry-run", "--design-name", "council JOBS ", cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == created.stdout
    assert "dry run: nothing to create" in again.stderr
    assert writes(tenant) == writes_after_setup


def test_adopt_creates_only_the_missing_attributes_and_keeps_existing_codes(
    tenant: EmulatorProcess, tmp_path: Path
) -> None:
    design = tenant.create_design("Street works jobs")
    code = design["code"]
    kept = {
        "ALLOYSYNC_ATTRIBUTES__STATUS": tenant.add_attribute(code, "Status", string_options(40)),
        "ALLOYSYNC_ATTRIBUTES__ENABLED": tenant.add_attribute(code, " enabled", boolean_options()),
        "ALLOYSYNC_ATTRIBUTES__RUN_COUNT": tenant.add_attribute(code, "RUN COUNT", number_options()),
    }
    other = tenant.add_attribute(code, "Contractor", string_options(100))
    attributes_before = len(tenant.get_design(code)["attributes"])

    result = setup_command(tenant, "--adopt", code, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    printed = settings_from(result.stdout)
    assert printed["ALLOYSYNC_JOBS_DESIGN"] == code
    assert {key: printed[key] for key in kept} == kept
    assert printed["ALLOYSYNC_ATTRIBUTES__TITLE"] == TITLE_CODE
    assert other not in printed.values()
    after = tenant.get_design(code)["attributes"]
    assert len(after) == attributes_before + len(JOB_ATTRIBUTES) - 1 - len(kept)
    assert len(designs(tenant)) == 1  # adopted, not created
    assert f"created {len(JOB_ATTRIBUTES) - 1 - len(kept)} attribute(s)" in result.stderr

    again = setup_command(tenant, "--adopt", code, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == result.stdout
    assert len(tenant.get_design(code)["attributes"]) == len(after)


def test_adopt_refuses_a_wrongly_typed_attribute_and_creates_nothing(
    tenant: EmulatorProcess, tmp_path: Path
) -> None:
    design = tenant.create_design("Old jobs")
    code = design["code"]
    status = tenant.add_attribute(code, "Status", number_options())
    tenant.add_attribute(code, "Task", string_options(1000))
    writes_before = writes(tenant)

    result = setup_command(tenant, "--adopt", code, cwd=tmp_path)

    assert result.returncode == 1
    assert result.stdout == ""
    problems = [line for line in result.stderr.splitlines() if line.startswith("alloysync setup: ")]
    assert problems[-1] == "alloysync setup: nothing was created"
    (wrong,) = problems[:-1]
    assert f'attribute "Status" ({status})' in wrong and "Number" in wrong and "String" in wrong
    assert "ALLOYSYNC_ATTRIBUTES__STATUS" in wrong
    assert writes(tenant) == writes_before
    assert len(tenant.get_design(code)["attributes"]) == len(design["attributes"]) + 2


def test_adopt_of_a_design_that_does_not_exist_says_so(tenant: EmulatorProcess, tmp_path: Path) -> None:
    result = setup_command(tenant, "--adopt", "designs_nope_65a1b2c3d4e5f60718293a4b", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "--adopt designs_nope_65a1b2c3d4e5f60718293a4b: Alloy has no design with that code" in result.stderr
    )
    assert designs(tenant) == []


def test_env_file_is_updated_and_nothing_is_printed(tenant: EmulatorProcess, tmp_path: Path) -> None:
    env = tmp_path / "deploy.env"
    env.write_text(
        "# settings of this host\nALLOYSYNC_REDIS_URL=redis://127.0.0.1:6379/0\nALLOYSYNC_JOBS_DESIGN=x\n"
    )

    result = setup_command(tenant, "--env-file", str(env), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"wrote {len(expected_keys())} settings to {env}" in result.stderr
    lines = env.read_text().splitlines()
    assert lines[:2] == ["# settings of this host", "ALLOYSYNC_REDIS_URL=redis://127.0.0.1:6379/0"]
    written = settings_from("\n".join(lines[1:]))
    assert list(written)[1:] == expected_keys()  # the design line updated in place, the rest appended
    assert GENERATED_DESIGN.match(written["ALLOYSYNC_JOBS_DESIGN"])
    assert TOKEN not in env.read_text()

    # The same lines as on stdout; and a second run leaves the file as it is.
    printed = setup_command(tenant, cwd=tmp_path)
    assert settings_from(printed.stdout) == {k: v for k, v in written.items() if k != "ALLOYSYNC_REDIS_URL"}
    content = env.read_text()
    setup_command(tenant, "--env-file", str(env), cwd=tmp_path)
    assert env.read_text() == content


def test_a_wrong_token_and_an_unreachable_alloy_are_clear_errors(
    tenant: EmulatorProcess, tmp_path: Path
) -> None:
    wrong = alloysync(
        "setup", cwd=tmp_path, ALLOYSYNC_ALLOY_URL=tenant.url, ALLOYSYNC_ALLOY_TOKEN="tok-wrong-31337"
    )
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert "rejected the API token" in wrong.stderr and "ALLOYSYNC_ALLOY_TOKEN" in wrong.stderr
    assert "tok-wrong-31337" not in wrong.stderr

    port = free_port()
    down = alloysync(
        "setup",
        cwd=tmp_path,
        ALLOYSYNC_ALLOY_URL=f"http://127.0.0.1:{port}",
        ALLOYSYNC_ALLOY_TOKEN=TOKEN,
        ALLOYSYNC_ALLOY_MAX_RETRIES="0",
    )
    assert down.returncode == 1 and down.stdout == ""
    (line,) = down.stderr.strip().splitlines()
    assert f"127.0.0.1:{port}" in line and "ALLOYSYNC_ALLOY_URL" in line
    assert TOKEN not in down.stderr

    empty = alloysync("setup", cwd=tmp_path, ALLOYSYNC_ALLOY_URL=tenant.url)
    assert empty.returncode == 2 and "ALLOYSYNC_ALLOY_TOKEN is empty" in empty.stderr
    assert designs(tenant) == []


async def test_an_attribute_add_with_a_stale_design_signature_reads_the_design_again(
    tenant: EmulatorProcess,
) -> None:
    """Someone else edits the design while setup adds attributes (or our own add's answer was lost)."""
    tenant.set_faults(signature_mismatch_status=400)  # the category decides, whatever the status
    stale = Design.model_validate(tenant.create_design("Shared jobs"))
    tenant.add_attribute(stale.code, "Contractor", string_options(100))  # the design changes under us
    settings = Settings(alloy_url=tenant.url, alloy_token=SecretStr(TOKEN))
    progress = io.StringIO()
    async with AlloyClient.from_settings(settings) as client:
        run = SetupRun(client, settings, SetupOptions(), progress)
        status_code, after = await run.add_one(stale, BY_FIELD["status"])
        assert after.attribute(status_code) is not None and after.signature != stale.signature

        # An add whose answer was lost: the attribute is there, so the retry must not add it again.
        tenant.add_attribute(stale.code, "Task", string_options(1000))
        task_code, _ = await run.add_one(after, BY_FIELD["task"])
    codes_by_name = {
        attribute["name"]: attribute["code"] for attribute in tenant.get_design(stale.code)["attributes"]
    }
    names = [attribute["name"] for attribute in tenant.get_design(stale.code)["attributes"]]
    assert names.count("Status") == 1 and names.count("Task") == 1
    assert codes_by_name["Status"] == status_code and codes_by_name["Task"] == task_code


def string_options(max_length: int) -> dict[str, Any]:
    return {"discriminator": "DodiAttributeOptionsStringWebModel", "max": max_length}


def boolean_options() -> dict[str, Any]:
    return {"discriminator": "DodiAttributeOptionsBooleanWebModel"}


def number_options() -> dict[str, Any]:
    return {"discriminator": "DodiAttributeOptionsNumberWebModel", "decimalPlaces": 0}
