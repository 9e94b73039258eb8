"""A record using the built-ins is validated before anything runs: options off the operator's
allow-lists (URLs, designs, mail domains) and template escapes make the record Invalid, with a
message that names the step and the option."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from alloysync.alloy.models import Attribute, Item
from alloysync.builtins.common import url_allowed
from alloysync.model.jobs import InvalidJob, JobSpec, read_definition, validate_job
from alloysync.model.registry import REGISTRY, TaskRegistry, load_task_modules
from alloysync.settings import Settings

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CODES = Settings().attributes


@pytest.fixture(scope="module")
def registry() -> TaskRegistry:
    return load_task_modules(Settings().task_modules_to_load)


def operator_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "builtin_alloy_designs": ["designs_defects", "designInterfaces_assets"],
        "builtin_http_allow": ["https://api.contractor.example/v1/"],
        "builtin_http_secrets": {"contractor": SecretStr("Bearer s3cret")},
        "builtin_mail_allow": ["council.example"],
        "smtp_host": "smtp.council.example",
        **overrides,
    }
    return Settings(**values)


def validate(registry: TaskRegistry, task: str, params: Any, settings: Settings | None = None) -> Any:
    values = {CODES.title: "a job", CODES.enabled: True, CODES.task: task, CODES.params: params}
    item = Item(
        itemId="job-1",
        designCode="designs_alloysyncJobs",
        attributes=[Attribute(attributeCode=code, value=value) for code, value in values.items()],
    )
    return validate_job(read_definition(item, CODES), registry, settings or operator_settings(), NOW)


def invalid_message(registry: TaskRegistry, task: str, params: Any, settings: Settings | None = None) -> str:
    job = validate(registry, task, params, settings)
    assert isinstance(job, InvalidJob), f"expected Invalid, got {job}"
    return job.message


def test_builtins_are_registered_by_default_and_can_be_turned_off() -> None:
    names = {"alloy.query", "alloy.get", "alloy.update", "alloy.create", "http.request", "data.select"}
    names |= {"data.filter", "data.render", "data.count", "data.threshold", "mail.send", "wait.until"}
    assert names <= set(load_task_modules(Settings().task_modules_to_load).names())
    assert Settings(builtin_tasks=False).task_modules_to_load == Settings().task_modules
    assert Settings().task_modules_to_load[0] == "alloysync.builtins"
    for name in names:
        assert REGISTRY.get(name) is not None and REGISTRY.get(name).example is not None  # type: ignore[union-attr]


def test_a_digest_record_within_the_allow_lists_is_valid(registry: TaskRegistry) -> None:
    params = {
        "steps": [
            {"design": "designs_defects", "where": {"attributes_defectsStatus": "Open"}},
            {"where": "priority != 'Low'"},
            {"design": "designs_defects", "values": {"attributes_defectsStatus": "Escalated"}},
            {"template": "{% for d in input %}{{ d.ref }}\n{% endfor %}", "subject": "{{ input | length }}"},
            {"to": ["highways@council.example"]},
        ]
    }
    job = validate(registry, "alloy.query | data.filter | alloy.update | data.render | mail.send", params)
    assert isinstance(job, JobSpec), job
    assert job.later_params[1]["values"] == {"attributes_defectsStatus": "Escalated"}


def test_a_url_off_the_allow_list_is_invalid(registry: TaskRegistry) -> None:
    for url in (
        "https://evil.example/v1/jobs",
        "https://api.contractor.example.evil.example/v1/jobs",  # a longer host is another host
        "https://api.contractor.example/v1x/jobs",  # the prefix ends at a path segment
        "http://api.contractor.example/v1/jobs",  # another scheme
        "https://api.contractor.example:8443/v1/jobs",  # another port
        "https://user:pw@api.contractor.example/v1/jobs",
    ):
        message = invalid_message(registry, "http.request", {"url": url, "method": "POST"})
        assert "not under an allowed prefix" in message and "ALLOYSYNC_BUILTIN_HTTP_ALLOW" in message, url
    assert isinstance(
        validate(registry, "http.request", {"url": "https://api.contractor.example/v1/jobs"}), JobSpec
    )
    message = invalid_message(
        registry,
        "http.request",
        {"url": "https://api.contractor.example/v1/"},
        operator_settings(builtin_http_allow=[]),
    )
    assert "http.request is off" in message


def test_url_prefixes_match_whole_hosts_and_path_segments() -> None:
    prefixes = ["https://api.example/v1", "http://127.0.0.1:8123/hooks/"]
    assert url_allowed("https://api.example/v1", prefixes)
    assert url_allowed("https://API.example/v1/x?y=1", prefixes)
    assert url_allowed("https://api.example:443/v1/x", prefixes)
    assert url_allowed("http://127.0.0.1:8123/hooks/a", prefixes)
    assert not url_allowed("http://127.0.0.1:8124/hooks/a", prefixes)
    assert not url_allowed("https://api.example/v10", prefixes)
    assert not url_allowed("https://api.example@evil.example/v1", prefixes)
    assert not url_allowed("ftp://api.example/v1", prefixes)
    assert not url_allowed("https://api.example:notaport/v1", prefixes)


def test_a_secret_header_names_a_configured_secret_and_never_holds_it(registry: TaskRegistry) -> None:
    base = {"url": "https://api.contractor.example/v1/jobs"}
    ok = validate(registry, "http.request", {**base, "secret_headers": {"Authorization": "contractor"}})
    assert isinstance(ok, JobSpec)
    message = invalid_message(
        registry, "http.request", {**base, "secret_headers": {"Authorization": "other"}}
    )
    assert "names secret 'other'" in message and "contractor" in message and "s3cret" not in message
    assert "set by alloysync itself" in invalid_message(
        registry, "http.request", {**base, "headers": {"Host": "x"}}
    )


def test_a_design_off_the_allow_list_is_invalid(registry: TaskRegistry) -> None:
    update = {"values": {"attributes_streetlightsStatus": "Off"}}
    message = invalid_message(registry, "alloy.update", {**update, "design": "designs_streetlights"})
    assert "design designs_streetlights is not one the built-in tasks may edit" in message
    assert "ALLOYSYNC_BUILTIN_ALLOY_DESIGNS" in message
    message = invalid_message(registry, "alloy.create", {**update, "design": "designs_streetlights"})
    assert "designs_streetlights" in message
    message = invalid_message(registry, "alloy.update", {**update, "design": "designs_alloysyncJobs"})
    assert "never edit job records" in message
    assert isinstance(
        validate(registry, "alloy.update", {**update, "design": "designInterfaces_assets"}), JobSpec
    )
    assert "needs 'values'" in invalid_message(registry, "alloy.update", {"design": "designs_defects"})


def test_a_mail_domain_off_the_allow_list_is_invalid(registry: TaskRegistry) -> None:
    message = invalid_message(registry, "mail.send", {"to": ["someone@gmail.example"], "subject": "x"})
    assert (
        "someone@gmail.example is not at an allowed domain" in message
        and "ALLOYSYNC_BUILTIN_MAIL_ALLOW" in message
    )
    message = invalid_message(
        registry, "mail.send", {"to": ["ops@council.example"], "cc": ["x@evil.example"]}
    )
    assert "option 'cc'" in message
    assert "not an e-mail address" in invalid_message(registry, "mail.send", {"to": ["council.example"]})
    off = operator_settings(smtp_host="")
    assert "ALLOYSYNC_SMTP_HOST is empty" in invalid_message(
        registry, "mail.send", {"to": ["a@council.example"]}, off
    )
    assert isinstance(
        validate(registry, "mail.send", {"to": ["Ops <ops@council.example>"], "subject": "x"}), JobSpec
    )


def test_a_template_escape_is_invalid_before_anything_runs(registry: TaskRegistry) -> None:
    message = invalid_message(registry, "data.render", {"template": "{{ ''.__class__.__mro__ }}"})
    assert "'__mro__' is off limits" in message or "'__class__' is off limits" in message
    assert "Params" in message
    message = invalid_message(registry, "data.render", {"template": "{% for x in %}"})
    assert "option 'template': line 1" in message
    message = invalid_message(
        registry, "mail.send", {"to": ["a@council.example"], "subject": "{{ x._secret }}"}
    )
    assert "'_secret' is off limits" in message


def test_a_later_step_is_named_in_the_message(registry: TaskRegistry) -> None:
    params = {
        "steps": [{"design": "designs_defects"}, {"design": "designs_other", "values": {"attributes_x": 1}}]
    }
    message = invalid_message(registry, "alloy.query | alloy.update", params)
    assert "step 2 (alloy.update)" in message and "designs_other" in message


def test_bad_shorthand_jmespath_and_waits_are_invalid(registry: TaskRegistry) -> None:
    where = {"design": "designs_defects", "where": {"status": "Open"}}
    assert "neither an attribute code" in invalid_message(registry, "alloy.query", where)
    where = {"design": "designs_defects", "where": {"attributes_x": {"around": 3}}}
    assert "unknown operator" in invalid_message(registry, "alloy.query", where)
    where = {"design": "designs_defects", "where": {"attributes_x": {"before": "last tuesday"}}}
    assert "not a date-time" in invalid_message(registry, "alloy.query", where)
    assert "not a valid JMESPath" in invalid_message(registry, "data.filter", {"where": "[?"})
    assert "not a duration" in invalid_message(registry, "wait.until", {"delay": "soon"})
    assert "ALLOYSYNC_BUILTIN_WAIT_MAX" in invalid_message(registry, "wait.until", {"delay": "60d"})
    assert "needs one of 'delay'" in invalid_message(registry, "wait.until", {})
    assert "needs 'above' or 'below'" in invalid_message(registry, "data.threshold", {})
    limit = {"design": "designs_defects", "limit": 10**9}
    assert "ALLOYSYNC_BUILTIN_MAX_ITEMS" in invalid_message(registry, "alloy.query", limit)


def test_the_settings_read_lists_and_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOYSYNC_BUILTIN_ALLOY_DESIGNS", "designs_defects, designInterfaces_assets")
    monkeypatch.setenv("ALLOYSYNC_BUILTIN_HTTP_ALLOW", '["https://api.contractor.example/v1/"]')
    monkeypatch.setenv("ALLOYSYNC_BUILTIN_HTTP_SECRETS", '{"contractor": "Bearer s3cret"}')
    monkeypatch.setenv("ALLOYSYNC_BUILTIN_MAIL_ALLOW", "@Council.Example,parks.council.example")
    settings = Settings()
    assert settings.builtin_alloy_designs == ["designs_defects", "designInterfaces_assets"]
    assert settings.builtin_http_allow == ["https://api.contractor.example/v1/"]
    assert settings.builtin_http_secrets["contractor"].get_secret_value() == "Bearer s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.builtin_mail_allow == ["council.example", "parks.council.example"]
    monkeypatch.setenv("ALLOYSYNC_BUILTIN_MAIL_ALLOW", "not a domain")
    with pytest.raises(ValueError, match="must be e-mail domains"):
        Settings()
    monkeypatch.setenv("ALLOYSYNC_BUILTIN_MAIL_ALLOW", "")
    monkeypatch.setenv("ALLOYSYNC_BUILTIN_HTTP_ALLOW", "api.contractor.example")
    with pytest.raises(ValueError, match="must be http"):
        Settings()


def test_alloysync_tasks_documents_each_builtin_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    from alloysync.cli import print_registered_tasks

    assert print_registered_tasks(Settings()) == 0
    listing = capsys.readouterr().out
    for name in ("alloy.query", "alloy.update", "http.request", "data.render", "mail.send", "wait.until"):
        entry = listing.split(f"\n{name}(", 1)[1].split("\n", 4)
        assert entry[3].startswith("    example options: {"), (name, entry)
    assert 'example options: {"delay": "2h"}' in listing
