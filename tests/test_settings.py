"""Settings: environment parsing, validation messages, and secrets that never show."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from alloysync.settings import DEFAULT_REDIS_URL, MissedRunPolicy, Settings, describe_validation_error


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOYSYNC_ALLOY_URL", "http://127.0.0.1:8090/")
    monkeypatch.setenv("ALLOYSYNC_TASK_MODULES", "a.tasks, b.tasks")
    monkeypatch.setenv("ALLOYSYNC_MISSED_RUNS", "all")
    monkeypatch.setenv("ALLOYSYNC_ATTRIBUTES__STATUS", "attributes_myStatus")
    settings = Settings()
    assert settings.alloy_url == "http://127.0.0.1:8090"
    assert settings.task_modules == ["a.tasks", "b.tasks"]
    assert settings.missed_runs is MissedRunPolicy.ALL
    assert settings.attributes.status == "attributes_myStatus"
    assert settings.attributes.task == "attributes_alloysyncJobsTask"
    assert settings.effective_redis_url == DEFAULT_REDIS_URL
    assert settings.http_host == "127.0.0.1"


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOYSYNC_ALLOY_TOKEN", "tok-3c1f2a")
    monkeypatch.setenv("ALLOYSYNC_WEBHOOK_SECRET", "hook-9d8e7f")
    settings = Settings()
    assert settings.alloy_token_value() == "tok-3c1f2a"
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "tok-3c1f2a" not in text and "hook-9d8e7f" not in text


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("ALLOYSYNC_ALLOY_URL", "api.uk.alloyapp.io", "http(s) URL"),
        ("ALLOYSYNC_REDIS_URL", "localhost:6379", "redis://"),
        ("ALLOYSYNC_POLL_INTERVAL", "0", "greater than 0"),
        ("ALLOYSYNC_ALLOY_PAGE_SIZE", "500", "less than or equal to 100"),
        ("ALLOYSYNC_MISSED_RUNS", "sometimes", "'skip', 'once' or 'all'"),
        ("ALLOYSYNC_LOG_FORMAT", "xml", "auto"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    lines = describe_validation_error(caught.value)
    assert len(lines) == 1
    assert lines[0].startswith(f"{variable}: ") and fragment in lines[0]
