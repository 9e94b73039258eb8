"""Per-run logs: a step's `ctx.log` lines, plain stdlib logging and warnings from its thread, and
alloysync's own lines for the run are kept with the run, shown on the run page and in the API; a
failed run's Message ends with its last lines; secrets from the settings never appear in them."""

from __future__ import annotations

from typing import Any

from tests.support.system import System

SECRET = "webhook-secret-that-must-not-leak"


def log_texts(run: dict[str, Any]) -> list[str]:
    return [line["text"] for line in run["log"]]


def test_a_failed_runs_log_is_kept_shown_and_ends_its_message(system: System) -> None:
    system.overrides["ALLOYSYNC_WEBHOOK_SECRET"] = SECRET
    system.start_serve()
    system.start_worker()
    item = system.create_job("chatty", "tests.chatty", params={"label": "c1", "fail": True, "secret": SECRET})
    job = system.wait_for_status(item, "Failed")
    [run] = system.api(f"/api/jobs/{item}")["runs"]
    texts = log_texts(run)
    assert any("created" in text and "by the poller" in text for text in texts)
    assert any("claimed by worker" in text for text in texts)
    assert "chatty c1 says hello" in texts
    assert "library warning from c1" in texts
    assert any("deprecated call in c1" in text for text in texts)
    assert any("run failed" in text and "c1 failed after talking" in text for text in texts)
    assert all(SECRET not in text for text in texts) and "the secret is **********" in texts
    levels = {line["text"]: line["level"] for line in run["log"]}
    assert levels["library warning from c1"] == "warning"
    # The failed run's Message ends with the last lines of its log.
    message = job["message"]
    assert "c1 failed after talking" in message and message.rstrip().endswith("last words of c1")
    detail = system.api(f"/api/jobs/{item}/runs/{run['run_id']}")
    assert log_texts(detail) == texts
    page = system.page(f"/jobs/{item}/runs/{run['run_id']}")
    assert "chatty c1 says hello" in page and SECRET not in page
