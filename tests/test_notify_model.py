"""The pure side of notifications and freshness: what an e-mail and a webhook say, which targets are
allowed and how logs name them, and when a job is overdue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alloysync.model.freshness import age_text, max_age_text, overdue_verdict
from alloysync.model.notify import (
    LogLine,
    Notification,
    NotificationKind,
    job_url,
    message_id,
    notification_kind,
    render_email,
    target_label,
    webhook_allowed,
    webhook_payload,
)
from alloysync.model.times import format_alloy_datetime

URL = job_url("https://alloysync.example.org/", "65a1b2c3d4e5f60718293a4b")


def notification(kind: NotificationKind = NotificationKind.FAILED, **overrides: object) -> Notification:
    values: dict[str, object] = {
        "item_id": "65a1b2c3d4e5f60718293a4b",
        "title": "Nightly export",
        "kind": kind,
        "at": "2026-11-21T10:00:05.000Z",
        "message": "RuntimeError: the export server said 503",
        "job_url": URL,
        "run_id": "cron:65a1b2c3d4e5f60718293a4b:2026-11-21T10:00:00.000Z",
        "started": "2026-11-21T10:00:00.500Z",
        "finished": "2026-11-21T10:00:04.900Z",
        "failures": 1,
        "log_lines": (
            LogLine("2026-11-21T10:00:01.000Z", "INFO", "fetching page 1", 0),
            LogLine("2026-11-21T10:00:04.000Z", "ERROR", "giving up after 3 tries", 0),
        ),
    }
    values.update(overrides)
    return Notification(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        (NotificationKind.FAILED, "Nightly export failed"),
        (NotificationKind.RECOVERED, "Nightly export recovered"),
        (NotificationKind.SUCCEEDED, "Nightly export succeeded"),
        (NotificationKind.OVERDUE, "Nightly export is overdue"),
    ],
)
def test_the_subject_names_the_job_and_says_what_happened(kind: NotificationKind, says: str) -> None:
    assert render_email(notification(kind)).subject == f"[alloysync] {says}"


def test_the_email_says_the_job_status_time_error_log_and_link() -> None:
    content = render_email(notification())
    for text in (content.text, content.html):
        assert "Nightly export" in text
        assert "Failed" in text
        assert "2026-11-21T10:00:04.900Z" in text  # when it ended
        assert "RuntimeError: the export server said 503" in text
        assert "fetching page 1" in text and "giving up after 3 tries" in text
        assert "https://alloysync.example.org/jobs/65a1b2c3d4e5f60718293a4b" in text
    assert "Error:" in content.text


def test_a_recovery_shows_the_summary_and_an_overdue_job_says_why() -> None:
    recovered = render_email(notification(NotificationKind.RECOVERED, message="exported 120 rows"))
    assert "Summary:\nexported 120 rows" in recovered.text and "Succeeded" in recovered.text
    overdue = render_email(
        notification(NotificationKind.OVERDUE, run_id="", started="", finished="", log_lines=())
    )
    assert "Why:" in overdue.text and "Overdue" in overdue.text
    assert "Run:" not in overdue.text and "log lines" not in overdue.text


def test_html_is_escaped_and_text_is_left_as_written() -> None:
    content = render_email(
        notification(
            title="<b>Export</b>",
            message="<script>alert(1)</script>",
            log_lines=(LogLine("t", "INFO", "<img src=x onerror=alert(2)>"),),
        )
    )
    assert "<script>" not in content.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in content.html
    assert "<img" not in content.html and "<b>Export" not in content.html
    assert "<script>alert(1)</script>" in content.text  # plain text is not HTML: no entities


def test_a_title_with_newlines_cannot_break_the_subject_line() -> None:
    subject = render_email(notification(title="Export\r\nBcc: everyone@example.org")).subject
    assert "\n" not in subject and "\r" not in subject
    assert subject == "[alloysync] Export Bcc: everyone@example.org failed"
    long = render_email(notification(title="x" * 500)).subject
    assert long.endswith("… failed") and len(long) < 200
    assert render_email(notification(title="")).subject == "[alloysync] 65a1b2c3d4e5f60718293a4b failed"


def test_the_webhook_body_carries_the_contract_fields() -> None:
    body = webhook_payload(notification())
    assert body["item_id"] == "65a1b2c3d4e5f60718293a4b"
    assert body["title"] == "Nightly export"
    assert body["status"] == "Failed"
    assert body["message"] == "RuntimeError: the export server said 503"
    assert body["run_id"] == "cron:65a1b2c3d4e5f60718293a4b:2026-11-21T10:00:00.000Z"
    assert body["finished"] == "2026-11-21T10:00:04.900Z"
    assert body["url"] == URL and body["event"] == "failed" and body["consecutive_failures"] == 1
    assert [line["text"] for line in body["log"]] == ["fetching page 1", "giving up after 3 tries"]
    overdue = webhook_payload(notification(NotificationKind.OVERDUE, run_id="", finished=""))
    assert (overdue["status"], overdue["run_id"], overdue["finished"]) == ("Overdue", None, None)


def test_log_lines_are_read_leniently_and_bounded() -> None:
    line = LogLine.from_dict({"at": "t", "level": "WARNING", "text": "y" * 5000, "step": 1})
    assert (line.level, line.step, len(line.text)) == ("WARNING", 1, 2000)
    assert LogLine.from_dict({}) == LogLine("", "", "", None)


def test_kinds_map_to_statuses_and_unknown_kinds_are_none() -> None:
    assert [notification_kind(k).status.value for k in ("failed", "recovered", "succeeded", "overdue")] == [  # type: ignore[union-attr]
        "Failed",
        "Succeeded",
        "Succeeded",
        "Overdue",
    ]
    assert notification_kind("exploded") is None


def test_webhook_urls_must_start_with_an_allowed_prefix() -> None:
    prefixes = ["https://hooks.example.org/alloysync/"]
    assert webhook_allowed("https://hooks.example.org/alloysync/abc", prefixes)
    assert not webhook_allowed("https://hooks.example.org/other", prefixes)
    assert not webhook_allowed("https://evil.example.org/alloysync/abc", prefixes)
    assert not webhook_allowed("https://hooks.example.org/alloysync/abc", [])
    assert not webhook_allowed("ftp://hooks.example.org/alloysync/", ["ftp://hooks.example.org/"])


def test_logs_name_a_url_by_its_origin_only() -> None:
    assert (
        target_label("https://hooks.example.org/T000/B000/secret-token?key=s3")
        == "https://hooks.example.org/…"
    )
    assert target_label("https://user:pw@hooks.example.org/x") == "https://hooks.example.org/…"
    assert target_label("ops@example.org") == "ops@example.org"


def test_the_message_id_is_the_same_for_every_attempt_and_differs_per_target() -> None:
    first = message_id("1700000000000-0", "ops@example.org", "example.org")
    assert first == message_id("1700000000000-0", "ops@example.org", "example.org")
    assert first != message_id("1700000000000-0", "dev@example.org", "example.org")
    assert first.startswith("<alloysync.1700000000000-0.") and first.endswith("@example.org>")


# --- freshness --------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return format_alloy_datetime(NOW - timedelta(**delta))


def test_a_job_is_overdue_when_its_last_success_is_older_than_max_age() -> None:
    assert overdue_verdict(26 * 3600, ago(hours=25), ago(days=10), NOW) is None
    verdict = overdue_verdict(26 * 3600, ago(hours=27), ago(days=10), NOW)
    assert verdict is not None and verdict.age_seconds == 27 * 3600
    assert verdict.message == f"No success for 27 h (MaxAge 26h); last success {ago(hours=27)}"


def test_before_its_first_success_a_job_counts_from_when_alloysync_first_saw_it() -> None:
    assert overdue_verdict(60, "", ago(seconds=59), NOW) is None
    verdict = overdue_verdict(60, "", ago(seconds=61), NOW)
    assert verdict is not None
    assert verdict.message == (
        "No success for 61 s (MaxAge 1m); "
        f"it has not succeeded since alloysync first saw it at {ago(seconds=61)}"
    )


def test_a_recent_success_wins_over_an_old_first_sighting_and_no_time_means_no_verdict() -> None:
    assert overdue_verdict(3600, ago(minutes=5), ago(days=3), NOW) is None
    assert overdue_verdict(3600, "", "", NOW) is None
    assert overdue_verdict(3600, "not a time", "", NOW) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45 s"), (119, "119 s"), (5400, "90 min"), (26 * 3600 + 59, "26 h"), (3 * 86400 + 5, "3 d")],
)
def test_ages_read_as_people_say_them(seconds: float, text: str) -> None:
    assert age_text(seconds) == text


def test_max_age_reads_as_the_user_wrote_it() -> None:
    assert [max_age_text(s) for s in (60, 5400, 93600, 172800, 45, None)] == [
        "1m",
        "90m",
        "26h",
        "2d",
        "45s",
        "",
    ]
