"""The Grafana dashboards: committed JSON is what the code generates, and the dashboards are sound.

Sound means: stable unique uids, unique panel ids, every panel and query on the provisioned
datasource (directly or through the `datasource` variable), refIds, units and descriptions set,
panels inside the 24-column grid without overlapping, and PromQL that reads only metrics that
alloysync, Dramatiq's middleware or Prometheus (`up`) really export. The per-job view's queries are
also evaluated by promtool on series as two serve replicas export them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from grafana import generate
from grafana.promql import known_metric_names, metric_names

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DATASOURCE_PROVISIONING = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVISIONING = ROOT / "grafana" / "provisioning" / "dashboards" / "alloysync.yml"
EXPECTED_FILES = {"alloysync-overview.json", "alloysync-task.json", "alloysync-jobs.json"}
DATASOURCE_UIDS = {generate.DATASOURCE_UID, "${datasource}", "$datasource"}
UNITS = {"s", "ops", "reqps", "percentunit", "short"}
PANEL_TYPES = {"timeseries", "stat", "bargauge", "table"}
PER_JOB_METRICS = {
    "alloysync_jobs_overdue",
    "alloysync_job_last_success_timestamp_seconds",
    "alloysync_job_max_age_seconds",
    "alloysync_job_consecutive_failures",
}


def _committed() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in generate.DASHBOARDS_DIR.glob("*.json")
    }


COMMITTED = _committed()


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
    ]


@pytest.fixture(params=sorted(EXPECTED_FILES))
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return COMMITTED[request.param]


# --- generated == committed ------------------------------------------------------------------------


def test_committed_json_equals_generated_output() -> None:
    generated = generate.dashboards()
    assert set(generated) == EXPECTED_FILES
    assert set(COMMITTED) == EXPECTED_FILES
    for name, data in generated.items():
        committed_text = (generate.DASHBOARDS_DIR / name).read_text(encoding="utf-8")
        assert committed_text == generate.render(data), (
            f"grafana/dashboards/{name} is out of date: run `python -m grafana.generate`"
        )


def test_check_mode_detects_stale_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate.main(["--output-dir", str(tmp_path)]) == 0
    assert {path.name for path in tmp_path.iterdir()} == EXPECTED_FILES
    assert generate.main(["--check", "--output-dir", str(tmp_path)]) == 0

    stale = tmp_path / "alloysync-task.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace('"30s"', '"1m"'), encoding="utf-8")
    assert generate.main(["--check", "--output-dir", str(tmp_path)]) == 1
    assert "alloysync-task.json" in capsys.readouterr().err

    (tmp_path / "alloysync-overview.json").unlink()
    assert generate.main(["--check", "--output-dir", str(tmp_path)]) == 1
    assert generate.main(["--output-dir", str(tmp_path)]) == 0
    assert generate.main(["--check", "--output-dir", str(tmp_path)]) == 0


@pytest.mark.parametrize("command", [["-m", "grafana.generate"], ["grafana/generate.py"]])
def test_runs_as_module_and_as_script(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, *command, "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- identity and layout ---------------------------------------------------------------------------


def test_dashboard_uids_are_stable_and_unique() -> None:
    uids = [data["uid"] for data in COMMITTED.values()]
    assert (
        sorted(uids)
        == sorted([generate.OVERVIEW_UID, generate.TASK_UID, generate.JOBS_UID])
        == ["alloysync-jobs", "alloysync-overview", "alloysync-task"]
    )
    for name, data in COMMITTED.items():
        assert name == f"{data['uid']}.json"
        assert data["title"]
        assert "id" not in data or data["id"] is None, "a provisioned dashboard must not carry a database id"


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert all(isinstance(panel_id, int) and panel_id > 0 for panel_id in ids)
    assert len(ids) == len(set(ids))


def test_grid_positions_fit_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    boxes = []
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        assert x >= 0 and y >= 0 and w >= 1 and h >= 1, panel["title"]
        assert x + w <= 24, f"{panel['title']} ends at column {x + w}"
        boxes.append((panel["title"], x, y, w, h))
    for (a, ax, ay, aw, ah), (b, bx, by, bw, bh) in combinations(boxes, 2):
        overlap = ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah
        assert not overlap, f"panels {a!r} and {b!r} overlap"


# --- datasources, targets, units ------------------------------------------------------------------


def test_every_panel_and_target_uses_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] in DATASOURCE_UIDS, panel["title"]
        assert panel["datasource"]["type"] == "prometheus", panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] in DATASOURCE_UIDS, panel["title"]
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    assert datasource["current"]["value"] == generate.DATASOURCE_UID
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] in DATASOURCE_UIDS


def test_provisioning_files_name_the_same_datasource_and_folder() -> None:
    datasources = DATASOURCE_PROVISIONING.read_text(encoding="utf-8")
    assert re.search(rf"^\s*uid:\s*{generate.DATASOURCE_UID}\s*$", datasources, flags=re.MULTILINE)
    assert re.search(r"^\s*url:\s*http://127\.0\.0\.1:9090\s*$", datasources, flags=re.MULTILINE)
    assert re.search(r"^\s*type:\s*prometheus\s*$", datasources, flags=re.MULTILINE)
    assert re.search(
        rf"^\s*- name:\s*{re.escape(generate.DATASOURCE_NAME)}\s*$", datasources, flags=re.MULTILINE
    )
    providers = DASHBOARD_PROVISIONING.read_text(encoding="utf-8")
    assert re.search(r"^\s*type:\s*file\s*$", providers, flags=re.MULTILINE)
    assert re.search(r"^\s*path:\s*\$\{ALLOYSYNC_DASHBOARDS_DIR\}\s*$", providers, flags=re.MULTILINE)


def test_every_target_has_a_unique_ref_id(dashboard: dict[str, Any]) -> None:
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            assert not panel.get("targets")
            continue
        ref_ids = [target.get("refId") for target in panel["targets"]]
        assert ref_ids and all(ref_ids), panel["title"]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_panels_have_descriptions_and_units(dashboard: dict[str, Any]) -> None:
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert len(panel.get("description", "")) > 20, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, panel["title"]
        for header, unit, _ in _table_columns(panel):
            assert unit in UNITS, f"{panel['title']}: column {header}"


def _table_columns(panel: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A table panel's value columns as (header, unit, expression); [] for other panels.

    Each query's value field ("Value" for a single query, else "Value #<refId>") is renamed by the
    organize transformation, and its unit is set by an override on the new name.
    """
    if panel["type"] != "table":
        return []
    organize = next(step for step in panel["transformations"] if step["id"] == "organize")
    renamed = organize["options"]["renameByName"]
    units = {
        override["matcher"]["options"]: prop["value"]
        for override in panel["fieldConfig"]["overrides"]
        if override["matcher"]["id"] == "byName"
        for prop in override["properties"]
        if prop["id"] == "unit"
    }
    targets = panel["targets"]
    columns = []
    for target in targets:
        field = "Value" if len(targets) == 1 else f"Value #{target['refId']}"
        header = renamed[field]
        columns.append((header, units[header], target["expr"]))
    return columns


def _expected_units(title: str, exprs: str) -> set[str] | None:
    """The units a panel (or table column) with this title and these expressions may have."""
    if re.search(r"\b(ratio|share of)\b", title, flags=re.IGNORECASE):
        return {"percentunit"}
    if "histogram_quantile" in exprs or "time() -" in exprs or "_seconds)" in exprs:
        return {"s"}
    if "rate(" in exprs and "increase(" not in exprs:
        return {"ops", "reqps", "s"}
    return None


def test_units_match_what_is_measured(dashboard: dict[str, Any]) -> None:
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        columns = _table_columns(panel)
        if columns:
            for header, unit, expr in columns:
                column_units = _expected_units(header, expr) or {"short"}
                assert unit in column_units, f"{panel['title']}, {header}: {unit}, not {column_units}"
            continue
        unit = panel["fieldConfig"]["defaults"]["unit"]
        expected = _expected_units(panel["title"], " ".join(target["expr"] for target in panel["targets"]))
        assert expected is None or unit in expected, f"{panel['title']}: {unit}, not {expected}"


def test_instant_panels_and_tables(dashboard: dict[str, Any]) -> None:
    """Stat, bar gauge and table panels show the latest value: instant queries. A table merges its
    queries into one row per job, shows the job's labels first, and is sorted by a column it has."""
    for panel in _panels(dashboard):
        if panel["type"] in ("row", "timeseries"):
            continue
        for target in panel["targets"]:
            assert target["instant"] is True and target["range"] is False, panel["title"]
            assert target.get("format") == ("table" if panel["type"] == "table" else None), panel["title"]
        if panel["type"] != "table":
            continue
        assert [step["id"] for step in panel["transformations"]] == ["merge", "organize"], panel["title"]
        organize = panel["transformations"][1]["options"]
        assert organize["excludeByName"] == {"Time": True}
        order = sorted(organize["indexByName"], key=organize["indexByName"].get)
        assert order[:2] == ["title", "item_id"], panel["title"]
        headers = [header for header, _, _ in _table_columns(panel)]
        assert [organize["renameByName"][name] for name in order] == ["Job", "Item id", *headers]
        assert len(set(headers)) == len(headers), panel["title"]
        assert panel["options"]["sortBy"] == [{"desc": True, "displayName": headers[0]}], panel["title"]
        for _, _, expr in _table_columns(panel):
            assert "max by (item_id, title)" in expr, f"{panel['title']}: rows are not one per job: {expr}"


# --- PromQL ------------------------------------------------------------------------------------------


def test_every_expression_uses_existing_metrics(dashboard: dict[str, Any]) -> None:
    known = known_metric_names()
    for title, expr in _queries(dashboard):
        used = metric_names(generate.render_query(expr, task="coinrequest.fetch_prices"))
        assert used, f"{title}: reads no metric: {expr}"
        assert used - known == set(), f"{title}: unknown metrics {sorted(used - known)} in {expr}"


def test_variable_queries_use_existing_metrics() -> None:
    known = known_metric_names()
    variables = generate.variable_queries()
    assert [(v.dashboard, v.panel, v.expr) for v in variables] == [
        ("alloysync-task", "task", "label_values(alloysync_runs_total, task)")
    ]
    for variable in variables:
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable.expr)
        assert match is not None and match.group(1) in known


def test_task_dashboard_filters_every_query_by_task() -> None:
    task = COMMITTED["alloysync-task.json"]
    assert {variable["name"] for variable in task["templating"]["list"]} == {"datasource", "task"}
    for title, expr in _queries(task):
        assert expr.count('task="$task"') >= 1, title
        assert "task=~" not in expr, title


def test_overview_covers_the_system() -> None:
    overview = COMMITTED["alloysync-overview.json"]
    used = set().union(*(metric_names(generate.render_query(expr)) for _, expr in _queries(overview)))
    required = {
        "alloysync_runs_total",
        "alloysync_run_duration_seconds_bucket",
        "alloysync_schedule_lateness_seconds_bucket",
        "alloysync_queue_messages",
        "alloysync_outbox_events",
        "alloysync_outbox_oldest_event_age_seconds",
        "alloysync_alloy_requests_total",
        "alloysync_alloy_request_duration_seconds_bucket",
        "alloysync_alloy_rate_limit_wait_seconds_total",
        "alloysync_sync_lag_seconds",
        "alloysync_process_heartbeat_timestamp_seconds",
        "alloysync_poller_lease_held",
        "alloysync_workers",
        "alloysync_scheduler_last_tick_timestamp_seconds",
        "up",
    }
    assert required <= used, required - used


def test_jobs_dashboard_shows_every_per_job_metric_once_per_job() -> None:
    """Every per-job gauge is used, and always aggregated over the serve replicas that export it
    (max by item_id and title): two replicas must not show a job twice or count it twice."""
    jobs = COMMITTED["alloysync-jobs.json"]
    used = set().union(*(metric_names(generate.render_query(expr)) for _, expr in _queries(jobs)))
    assert used == PER_JOB_METRICS, used ^ PER_JOB_METRICS
    for data in COMMITTED.values():
        for title, expr in _queries(data):
            for metric in PER_JOB_METRICS & metric_names(generate.render_query(expr, task="t")):
                occurrences = len(re.findall(rf"\b{metric}\b", expr))
                per_job = len(re.findall(rf"max by \(item_id, title\) \({metric}\)", expr))
                assert occurrences == per_job, f"{title}: {metric} not aggregated per job in {expr}"
    descriptions = " ".join(panel.get("description", "") for panel in _panels(jobs))
    assert {"AlloySyncJobOverdue", "AlloySyncJobFailureStreak"} <= set(
        re.findall(r"AlloySync\w+", descriptions)
    )


def test_alerts_named_in_panel_descriptions_exist() -> None:
    alerts = set(re.findall(r"^\s*- alert:\s*(\w+)", ALERTS.read_text(encoding="utf-8"), flags=re.MULTILINE))
    for data in COMMITTED.values():
        for panel in _panels(data):
            for name in re.findall(r"AlloySync\w+", panel.get("description", "")):
                assert name in alerts, f"{panel['title']}: description names unknown alert {name}"


def test_all_panel_queries_lists_every_target() -> None:
    queries = generate.all_panel_queries()
    expected = [
        (data["uid"], title, expr)
        for data in generate.dashboards().values()
        for title, expr in _queries(data)
    ]
    assert [tuple(query) for query in queries] == expected
    assert {query.dashboard for query in queries} == {
        "alloysync-overview",
        "alloysync-task",
        "alloysync-jobs",
    }
    for dashboard_uid, title, expr in queries:
        assert dashboard_uid and title and expr


def test_render_query_substitutes_grafana_variables() -> None:
    expr = 'sum(rate(alloysync_runs_total{task="$task"}[$__rate_interval])) + sum(x{task="${task}"})'
    assert (
        generate.render_query(expr, task="a | b", rate_interval="2m")
        == 'sum(rate(alloysync_runs_total{task="a | b"}[2m])) + sum(x{task="a | b"})'
    )
    assert generate.render_query('x{task="$task"}', task='say "hi"') == 'x{task="say \\"hi\\""}'
    assert generate.render_query("rate(x[$__rate_interval])") == "rate(x[1m])"
    with pytest.raises(ValueError, match=r"\$task"):
        generate.render_query('x{task="$task"}')
    with pytest.raises(ValueError, match="unknown Grafana variable"):
        generate.render_query("rate(x[$__range])")
    for _, _, expr in generate.all_panel_queries():
        assert "$" not in generate.render_query(expr, task="t")


def test_promtool_parses_every_panel_expression(tmp_path: Path) -> None:
    """Every rendered panel expression is valid PromQL (checked by promtool as recording rules)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `apt-get install -y prometheus` (it provides promtool)")
    rules = []
    for index, (_, _, expr) in enumerate(generate.all_panel_queries()):
        rendered = generate.render_query(expr, task="coinrequest.fetch_prices")
        rules.append(f"      - record: panel:query:{index}\n        expr: {json.dumps(rendered)}\n")
    path = tmp_path / "panels.yml"
    path.write_text("groups:\n  - name: panels\n    rules:\n" + "".join(rules), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# The per-job panels evaluated by promtool on series as two serve replicas export them (promtool's
# clock starts at 0, so at 30m `time()` is 1800): job "late" is overdue and has never succeeded,
# "fresh" succeeded at time 0 with a MaxAge of 2 h, "flaky" has no MaxAge and failed 4 times in a row.
LATE = {"item_id": "late", "title": "late export"}
FRESH = {"item_id": "fresh", "title": "fresh prices"}
FLAKY = {"item_id": "flaky", "title": "flaky mail"}
REPLICAS = (
    'job="alloysync-serve", instance="127.0.0.1:8080"',
    'job="alloysync-serve", instance="127.0.0.2:8080"',
)
PER_JOB_INPUT = {
    "alloysync_jobs_overdue": [(LATE, 1), (FRESH, 0)],
    "alloysync_job_max_age_seconds": [(LATE, 3600), (FRESH, 7200)],
    "alloysync_job_last_success_timestamp_seconds": [(FRESH, 0)],
    "alloysync_job_consecutive_failures": [(FLAKY, 4)],
}
PER_JOB_EXPECTED: dict[tuple[str, str], list[tuple[dict[str, str], float]]] = {
    ("Overdue jobs", "A"): [({}, 1)],
    ("Jobs with a MaxAge", "A"): [({}, 2)],
    ("Jobs failing in a row", "A"): [({}, 1)],
    ("Longest failure streak", "A"): [({}, 4)],
    ("Freshness per job", "A"): [(LATE, 1), (FRESH, 0)],
    ("Freshness per job", "B"): [(FRESH, 1800)],
    ("Freshness per job", "C"): [(LATE, 3600), (FRESH, 7200)],
    ("Freshness per job", "D"): [(FRESH, 0.25)],
    ("Time since last success, share of MaxAge", "A"): [(FRESH, 0.25)],
    ("Time since last success", "A"): [(FRESH, 1800)],
    ("Overdue jobs over time", "A"): [({}, 1)],
    ("Failing jobs", "A"): [(FLAKY, 4)],
    ("Longest failure streaks", "A"): [(FLAKY, 4)],
    ("Failure streaks over time", "A"): [(FLAKY, 4)],
}


def _selector(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{name}="{value}"' for name, value in labels.items()) + "}"


def test_per_job_panels_show_each_job_once_with_its_values(tmp_path: Path) -> None:
    """Every query of the jobs dashboard, evaluated by `promtool test rules`: one row per job
    however many serve replicas export it, with the right value."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `apt-get install -y prometheus` (it provides promtool)")
    jobs = COMMITTED["alloysync-jobs.json"]
    targets = {
        (panel["title"], target["refId"]): target["expr"]
        for panel in _panels(jobs)
        for target in panel.get("targets", [])
    }
    assert set(targets) == set(PER_JOB_EXPECTED), "give every jobs-dashboard query its expected result"
    input_series = [
        {"series": f"{metric}{{{replica}, {_selector(labels)[1:-1]}}}", "values": f"{value}x40"}
        for metric, rows in PER_JOB_INPUT.items()
        for labels, value in rows
        for replica in REPLICAS
    ]
    expr_tests = [
        {
            "expr": generate.render_query(targets[key]),
            "eval_time": "30m",
            "exp_samples": [{"labels": _selector(labels), "value": value} for labels, value in expected],
        }
        for key, expected in PER_JOB_EXPECTED.items()
    ]
    test_file = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series, "promql_expr_test": expr_tests}],
    }
    path = tmp_path / "per_job_panels_test.yml"
    path.write_text(json.dumps(test_file, indent=1), encoding="utf-8")  # JSON is YAML
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
