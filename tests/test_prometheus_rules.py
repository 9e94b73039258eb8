"""The Prometheus config and alert rules: promtool accepts them, every alert is tested and documented.

promtool comes from Debian's `prometheus` package (`apt-get install prometheus`); these tests fail,
rather than skip, when it is missing, so that CI cannot pass without checking the rules.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from grafana.promql import known_metric_names, metric_names

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/alloysync/alloysync/blob/main/docs/runbooks.md#"
WATCHDOG = "AlloySyncWatchdog"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60, check=False)


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `apt-get install -y prometheus` (it provides promtool)")
    return path


def _assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


# --- promtool --------------------------------------------------------------------------------------


def test_promtool_check_config() -> None:
    _assert_ok(_run(_promtool(), "check", "config", CONFIG.name))


def test_promtool_check_rules() -> None:
    _assert_ok(_run(_promtool(), "check", "rules", ALERTS.name))


def test_promtool_test_rules() -> None:
    _assert_ok(_run(_promtool(), "test", "rules", ALERTS_TEST.name))


def test_alertmanager_example_is_valid() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool (Debian package prometheus-alertmanager) is not installed")
    _assert_ok(_run(amtool, "check-config", str(ALERTMANAGER)))


# --- reading our own YAML (no YAML library among the dependencies; the files keep one layout) -------


def _alerts() -> dict[str, str]:
    """Alert name → the text of its rule (from `- alert:` to the next rule)."""
    text = ALERTS.read_text(encoding="utf-8")
    parts = re.split(r"^\s*- alert:\s*", text, flags=re.MULTILINE)[1:]
    rules: dict[str, str] = {}
    for part in parts:
        name, _, body = part.partition("\n")
        name = name.strip()
        assert name not in rules, f"alert {name} is defined twice"
        rules[name] = body
    return rules


def _field(body: str, key: str) -> str | None:
    """A scalar field of a rule; folded (`>-`) and literal (`|`) blocks are joined into one line."""
    match = re.search(rf"^(\s*){key}:[ \t]*(.*)$", body, flags=re.MULTILINE)
    if match is None:
        return None
    indent, value = len(match.group(1)), match.group(2).strip()
    if value not in ("|", ">-", ">", "|-"):
        return value
    lines = []
    for line in body[match.end() + 1 :].splitlines():
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        lines.append(line.strip())
    return " ".join(part for part in lines if part)


def _github_anchor(heading: str) -> str:
    anchor = heading.strip().lower()
    anchor = re.sub(r"[^\w\- ]", "", anchor)
    return anchor.replace(" ", "-")


def test_alert_names_and_the_required_set() -> None:
    names = set(_alerts())
    assert all(name.startswith("AlloySync") for name in names), names
    required = {
        "AlloySyncJobsFailing",
        "AlloySyncJobOverdue",
        "AlloySyncJobFailureStreak",
        "AlloySyncStatusWriteBackStalled",
        "AlloySyncAlloyUnreachable",
        "AlloySyncAlloyRateLimited",
        "AlloySyncSyncLagHigh",
        "AlloySyncNoPollerLeaseHolder",
        "AlloySyncSchedulerStalled",
        "AlloySyncSchedulerDown",
        "AlloySyncNoWorkers",
        "AlloySyncQueueBacklogGrowing",
        WATCHDOG,
    }
    assert required <= names, required - names


def test_every_alert_has_severity_annotations_and_for() -> None:
    for name, body in _alerts().items():
        severity = _field(body, "severity")
        if name == WATCHDOG:
            assert severity == "none"
            assert _field(body, "expr") == "vector(1)"
        else:
            assert severity in ("critical", "warning"), name
            assert _field(body, "for"), f"{name} has no `for:` and would flap"
        assert _field(body, "summary"), name
        description = _field(body, "description")
        assert description, name
        if name != WATCHDOG:
            assert "$value" in description or "$labels." in description, (
                f"{name}: description is not templated"
            )
        assert _field(body, "runbook_url") == RUNBOOK_BASE + name.lower(), name


def test_runbook_urls_match_runbook_headings() -> None:
    headings = re.findall(r"^#{1,6}\s+(.+)$", RUNBOOKS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    anchors = {_github_anchor(heading) for heading in headings}
    for name, body in _alerts().items():
        url = _field(body, "runbook_url")
        assert url is not None and url.startswith(RUNBOOK_BASE), name
        assert url.removeprefix(RUNBOOK_BASE) in anchors, f"{name}: no heading in docs/runbooks.md for {url}"


def test_every_alert_is_tested_firing_and_silent() -> None:
    text = ALERTS_TEST.read_text(encoding="utf-8")
    cases = re.findall(r"alertname:\s*(\w+)\s*\n\s*exp_alerts:[ \t]*(\[\])?[ \t]*\n(\s*- exp_labels:)?", text)
    firing = {name for name, empty, labels in cases if not empty and labels}
    silent = {name for name, empty, _ in cases if empty}
    alerts = set(_alerts())
    assert alerts - firing == set(), f"alerts without a firing test case: {sorted(alerts - firing)}"
    assert alerts - silent == {WATCHDOG}, (
        f"alerts without a silent test case: {sorted(alerts - silent - {WATCHDOG})}"
    )
    assert (firing | silent) <= alerts, f"tests of unknown alerts: {sorted((firing | silent) - alerts)}"


def test_alert_expressions_use_existing_metrics() -> None:
    known = known_metric_names()
    for name, body in _alerts().items():
        expr = _field(body, "expr")
        assert expr, name
        used = metric_names(expr)
        assert used - known == set(), f"{name} uses unknown metrics {sorted(used - known)}: {expr}"
        if name != WATCHDOG:
            assert used, f"{name} reads no metric: {expr}"


def test_scrape_jobs_and_rule_files() -> None:
    text = CONFIG.read_text(encoding="utf-8")
    assert re.search(r"^\s*scrape_interval:\s*15s", text, flags=re.MULTILINE)
    assert re.search(r"^\s*evaluation_interval:\s*15s", text, flags=re.MULTILINE)
    assert re.search(r"^rule_files:\s*\n\s*- alerts\.yml", text, flags=re.MULTILINE)
    jobs = dict(re.findall(r"job_name:\s*(\S+)[\s\S]*?targets:\s*\[\"([^\"]+)\"", text))
    assert jobs == {
        "alloysync-serve": "127.0.0.1:8080",
        "alloysync-worker": "127.0.0.1:9191",
        "alloysync-scheduler": "127.0.0.1:9192",
    }


def test_metric_name_extraction() -> None:
    assert metric_names('sum by (task) (rate(alloysync_runs_total{outcome="failed"}[5m]))') == {
        "alloysync_runs_total"
    }
    assert metric_names("(sum(alloysync_poller_lease_held) or vector(0)) < 1") == {
        "alloysync_poller_lease_held"
    }
    assert metric_names('time() - max(x) offset 5m > 1e3 and on() group_left up{job="a"}') == {"x", "up"}
    assert "alloysync_runs_totl" in metric_names("rate(alloysync_runs_totl[5m])") - known_metric_names()
    known = known_metric_names()
    assert {
        "alloysync_runs_total",
        "alloysync_run_duration_seconds_bucket",
        "alloysync_build_info",
        "alloysync_workers",
        "dramatiq_messages_total",
        "up",
    } <= known
