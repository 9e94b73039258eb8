"""Monitoring end to end: a real Prometheus scrapes real serve, worker and scheduler processes.

With jobs flowing (one-off runs that succeed and fail, run-at jobs, a cron schedule), Prometheus —
configured from deploy/prometheus/prometheus.yml with its alert rules — must see every process, every
Grafana panel query must return data, every alert rule must evaluate without error (the watchdog
firing, nothing else alarming on a healthy system), every process's exposition must pass
`promtool check metrics`, and the worker's counters must start from zero after a restart.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alloysync.local.children import Child
from alloysync.model.times import format_alloy_datetime as format_time
from grafana.generate import all_panel_queries, render_query, variable_queries
from tests.support.prometheus import ALERTS, JOBS, PrometheusError, PrometheusServer, binary, finite
from tests.support.system import REPO, System

RATE_INTERVAL = "1m"  # $__rate_interval: long enough to span the whole test, short enough to be "now"
TASK = "tests.record"  # a task that runs once now and on a schedule (run-at) in this test
WATCHDOG = "AlloySyncWatchdog"
# Alerts that may legitimately become pending here: this test makes jobs fail on purpose, and lets
# one job go overdue.
EXPECTED_ALERTS = {WATCHDOG, "AlloySyncJobsFailing", "AlloySyncJobOverdue"}


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path / "prometheus")
    try:
        yield server
    finally:
        server.stop()


# --- helpers ------------------------------------------------------------------------------------------


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback test URL
        text: str = response.read().decode()
        return text


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called `name` in an exposition text, by their sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def alloysync_lines(text: str) -> str:
    """Only the metric families named alloysync_* of an exposition (HELP, TYPE and samples)."""
    kept = []
    for line in text.splitlines():
        name = line.split()[2] if line.startswith(("# HELP ", "# TYPE ")) else re.split(r"[{ ]", line)[0]
        if name.startswith("alloysync_"):
            kept.append(line)
    return "\n".join(kept) + "\n"


def listening_addresses(port: int) -> list[str]:
    """Local addresses of the TCP sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not Path(path).exists():
            continue
        for line in Path(path).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A = LISTEN
                continue
            raw = bytes.fromhex(address)  # 32-bit words in host (little-endian) order
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(socket.inet_ntop(family, packed))
    return found


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def panel_problems(prometheus: PrometheusServer, task: str) -> list[str]:
    """What is wrong with the dashboards' queries now: an error, no result, or no number at all."""
    problems = []
    by_panel: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for query in all_panel_queries():
        expr = render_query(query.expr, task=task, rate_interval=RATE_INTERVAL)
        where = f"dashboard {query.dashboard}, panel {query.panel!r}, query {expr}"
        try:
            result = prometheus.query(expr)
        except PrometheusError as error:
            problems.append(f"{where}: {error}")
            continue
        if not result:
            problems.append(f"{where}: no data")
        by_panel.setdefault((query.dashboard, query.panel), []).extend(result)
    for (dashboard, panel), result in by_panel.items():
        if result and not any(finite(sample) for sample in result):
            values = sorted({sample["value"][1] for sample in result})
            problems.append(f"dashboard {dashboard}, panel {panel!r}: only {values}, no number to show")
    return problems


def alert_names() -> set[str]:
    return set(re.findall(r"^\s*- alert:\s*(\S+)\s*$", ALERTS.read_text(encoding="utf-8"), re.MULTILINE))


def restart_worker_on_port(system: System, port: int) -> Child:
    """Start `alloysync worker` again on the same metrics port (System.start picks a new port)."""
    env = system.env(ALLOYSYNC_WORKER_METRICS_PORT=str(port))
    child = Child.alloysync(
        "worker-restarted", ["worker"], env, system.workdir / "logs" / "worker-restarted.log", cwd=REPO
    ).start()
    system.children["worker-restarted"] = child  # stopped with the others by the fixture
    system.wait_until(lambda: port_open(port), 30, "the restarted worker's metrics server", child=child)
    return child


# --- the test -----------------------------------------------------------------------------------------


def test_prometheus_scrapes_every_process_and_every_panel_and_alert_works(
    system: System, prometheus: PrometheusServer
) -> None:
    system.overrides["ALLOYSYNC_FRESHNESS_INTERVAL"] = "1"  # the overdue job below is marked at once
    system.start_serve()
    system.start_worker()
    system.start_scheduler()
    ports = {"alloysync-serve": "serve", "alloysync-worker": "worker", "alloysync-scheduler": "scheduler"}
    metrics_urls = {job: f"http://127.0.0.1:{system.ports[name]}/metrics" for job, name in ports.items()}
    prometheus.start({job: [f"127.0.0.1:{system.ports[name]}"] for job, name in ports.items()})

    def all_targets_up() -> bool:
        health = {target["labels"]["job"]: target["health"] for target in prometheus.targets()}
        return health == dict.fromkeys(JOBS, "up")

    prometheus.wait_until(all_targets_up, 20, "the three alloysync targets to be up")

    # Jobs flowing: run-at jobs a few seconds ahead (schedule lateness), a cron job that will not fire
    # during the test (an active schedule), one-off runs that succeed and fail. Each kind comes in two
    # waves, the second after Prometheus has scraped the first, so that it sees the counters and
    # histograms grow (rate() cannot count a series' first sample). One job that succeeds and one
    # that fails have a MaxAge (per-job gauges; an hour, so that neither becomes Overdue here), a job
    # that never runs has a MaxAge of 5 s and becomes Overdue, and the failing jobs have failure
    # streaks.
    def run_at(title: str, seconds: int) -> str:
        at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
        return system.create_job(title, TASK, params={"label": title}, schedule=format_time(at))

    def scraped(expr: str, what: str) -> None:
        prometheus.wait_until(lambda: prometheus.query(expr), 15, f"{what} in Prometheus")

    at_first = run_at("run-at 1", 5)
    cron = system.create_job("yearly", TASK, params={"label": "yearly"}, schedule="0 3 1 1 *")
    stale = system.create_job("stale", TASK, params={"label": "stale"}, schedule="0 3 1 1 *", max_age="5s")
    first_wave = [system.create_job(f"once {n}", TASK, params={"label": f"once-{n}"}) for n in range(3)]
    first_wave.append(system.create_job("monitored", TASK, params={"label": "monitored"}, max_age="1h"))
    failing = [system.create_job("broken 1", "tests.fail", params={"label": "broken-1"}, max_age="1h")]
    for item in first_wave:
        system.wait_for_status(item, "Succeeded")
    system.wait_for_status(failing[0], "Failed")
    scraped('sum(alloysync_runs_total{outcome="failed"}) == 1', "the first failed run")
    second_wave = [system.create_job(f"again {n}", TASK, params={"label": f"again-{n}"}) for n in range(2)]
    failing.append(system.create_job("broken 2", "tests.fail", params={"label": "broken-2"}))
    system.wait_for_status(at_first, "Succeeded")
    scraped(f'sum(alloysync_schedule_lateness_seconds_count{{task="{TASK}"}}) == 1', "the first lateness")
    at_second = run_at("run-at 2", 3)
    for item in [*second_wave, at_second]:
        system.wait_for_status(item, "Succeeded")
    system.wait_for_status(failing[1], "Failed")
    system.wait_until(lambda: system.job(cron)["status"] == "Scheduled", 10, "the cron job to be Scheduled")
    system.wait_for_status(stale, "Overdue")
    scraped(f'max(alloysync_jobs_overdue{{item_id="{stale}"}}) == 1', "the overdue job")
    runs_ended = len(first_wave) + len(second_wave) + 2 + len(failing)

    # Prometheus has the data: every run ended, two scheduled runs measured.
    scraped(f"sum(alloysync_runs_total) == {runs_ended}", f"{runs_ended} ended runs")
    scraped(f'sum(alloysync_schedule_lateness_seconds_count{{task="{TASK}"}}) == 2', "the second lateness")

    # Template variables: the task variable lists the task that ran (once now and on a schedule).
    for variable in variable_queries():
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable.expr)
        assert match, (
            f"dashboard {variable.dashboard}, variable {variable.panel}: cannot evaluate {variable.expr}"
        )
        values = prometheus.label_values(match.group(2), match.group(1))
        assert values, (
            f"dashboard {variable.dashboard}, variable {variable.panel} ({variable.expr}): no values"
        )
        if variable.panel == "task":
            assert set(values) == {TASK, "tests.fail"}, values

    # Every panel of both dashboards returns data (given a few scrapes for the last series to appear).
    deadline = time.monotonic() + 20
    problems = panel_problems(prometheus, TASK)
    while problems and time.monotonic() < deadline:
        time.sleep(1)
        problems = panel_problems(prometheus, TASK)
    assert not problems, "dashboard panels without data:\n" + "\n".join(problems)

    # Alert rules: all loaded, all evaluated without error, each expression parses; only the
    # watchdog fires and nothing unexpected is pending on this healthy system.
    def evaluated_rules() -> list[dict[str, Any]] | None:
        rules = prometheus.alert_rules()
        return rules if rules and all(rule["health"] != "unknown" for rule in rules) else None

    rules = prometheus.wait_until(evaluated_rules, 15, "every alert rule to be evaluated")
    assert {rule["name"] for rule in rules} == alert_names()
    broken = [
        f"{rule['name']}: {rule['health']} {rule.get('lastError', '')}"
        for rule in rules
        if rule["health"] != "ok"
    ]
    assert not broken, "alert rules failing to evaluate:\n" + "\n".join(broken)
    for rule in rules:
        try:
            prometheus.query(rule["query"])
        except PrometheusError as error:
            pytest.fail(f"alert {rule['name']}: expression does not evaluate: {error}")
    alerts = prometheus.alerts()
    assert any(a["labels"]["alertname"] == WATCHDOG and a["state"] == "firing" for a in alerts), alerts
    unexpected = [a for a in alerts if a["labels"]["alertname"] not in EXPECTED_ALERTS]
    assert not unexpected, f"alerts on a healthy system: {unexpected}"

    # promtool check metrics: alloysync's exposition is clean in every process.
    for job, url in metrics_urls.items():
        text = scrape(url)
        assert "alloysync_build_info" in text, f"{job}: no alloysync metrics at {url}"
        result = promtool_check_metrics(text)
        if job == "alloysync-worker":
            # Dramatiq's own middleware exports dramatiq_message_duration_milliseconds, which promtool
            # flags ("use base unit seconds"); we cannot rename Dramatiq's metric. Everything promtool
            # says must be about dramatiq_* metrics, and alloysync's own families must be clean.
            complaints = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
            assert all(line.startswith("dramatiq_") for line in complaints), complaints
            result = promtool_check_metrics(alloysync_lines(text))
        said = (result.stdout + result.stderr).strip()
        assert result.returncode == 0 and not said, (
            f"promtool check metrics on {job} ({url}) exited {result.returncode}:\n{said}"
        )

    # Every metrics server listens on loopback only.
    for name in ("serve", "worker", "scheduler"):
        addresses = listening_addresses(system.ports[name])
        assert addresses and set(addresses) == {"127.0.0.1"}, (name, addresses)

    # The worker's counters are per run of the pool: restart it on the same port, they start at zero.
    worker_port = system.ports["worker"]
    before = scrape(metrics_urls["alloysync-worker"])
    assert sum(samples(before, "alloysync_runs_total").values()) == runs_ended
    assert sum(samples(before, "dramatiq_messages_total").values()) >= runs_ended
    system.children["worker"].stop()
    assert not port_open(worker_port), "the worker's metrics server outlived the worker"
    restarted = restart_worker_on_port(system, worker_port)

    def booted() -> str | None:
        text = scrape(metrics_urls["alloysync-worker"])
        return text if "alloysync_build_info" in text else None

    after = system.wait_until(booted, 30, "the restarted worker processes to export metrics", child=restarted)
    assert not any(samples(after, "alloysync_runs_total").values()), after
    assert not any(samples(after, "dramatiq_messages_total").values()), after
    assert listening_addresses(worker_port) == ["127.0.0.1"]

    item = system.create_job("after restart", TASK, params={"label": "after-restart"})
    system.wait_for_status(item, "Succeeded")
    after = scrape(metrics_urls["alloysync-worker"])
    assert samples(after, "alloysync_runs_total") == {(("outcome", "succeeded"), ("task", TASK)): 1.0}
    assert sum(samples(after, "dramatiq_messages_total").values()) == 1
    # Prometheus sees a counter reset, not a sum of the two runs of the pool.
    prometheus.wait_until(
        lambda: prometheus.query(
            f'resets(alloysync_runs_total{{task="{TASK}", outcome="succeeded"}}[5m]) > 0'
        ),
        15,
        "Prometheus to see the worker's counter reset",
    )


# --- regressions: a run's duration, and the jobs-by-status gauge ---


def test_run_duration_is_measured_from_the_start_of_the_run(system: System) -> None:
    system.start_serve()
    system.start_worker()
    item = system.create_job("slow", TASK, params={"label": "slow", "sleep": 1.0})
    job = system.wait_for_status(item, "Succeeded")
    worker = scrape(f"http://127.0.0.1:{system.ports['worker']}/metrics")
    observed = samples(worker, "alloysync_run_duration_seconds_sum")[(("task", TASK),)]
    assert observed >= 1.0, f"run duration observed {observed} s for a run that slept 1 s"
    assert not job["message"].startswith("Succeeded in 0.0 s"), job["message"]


def test_jobs_by_status_gauge_follows_the_jobs(system: System) -> None:
    system.start_serve()
    system.start_worker()
    ok = system.create_job("fine", TASK, params={"label": "fine"})
    bad = system.create_job("broken", "tests.fail", params={"label": "broken"})
    system.wait_for_status(ok, "Succeeded")
    system.wait_for_status(bad, "Failed")

    def counts() -> dict[str, float]:
        gauge = samples(scrape(system.url() + "/metrics"), "alloysync_jobs")
        return {dict(labels)["status"]: value for labels, value in gauge.items()}

    deadline = time.monotonic() + 12  # two samples of serve's 5 s sampler, and some slack
    while time.monotonic() < deadline and not (
        counts().get("Failed") == 1 and counts().get("Succeeded") == 1
    ):
        time.sleep(0.5)
    assert counts().get("Failed") == 1 and counts().get("Succeeded") == 1, counts()
