"""HTML of the active jobs page and the job detail page (server-rendered, no front-end build step).

Every value that came from Alloy or a task is escaped. Pages refresh themselves every few seconds
with a plain `<meta http-equiv="refresh">`, so they work without JavaScript.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

REFRESH_SECONDS = 5

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d2330; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; } .sub { color: #5b6375; margin-bottom: 1rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e3e6ec; vertical-align: top; }
th { background: #f4f6f9; }
.status { font-weight: 600; padding: .1rem .45rem; border-radius: .6rem; white-space: nowrap; }
.Succeeded { background: #dff5e3; color: #17672a; } .Failed, .Invalid { background: #fde2e1; color: #9b1c1c; }
.Running { background: #e1ecfd; color: #1c4f9b; } .Queued, .Scheduled { background: #f1ecfb; color: #5b3a9b; }
.Paused { background: #eceff3; color: #5b6375; }
.filters a { margin-right: .6rem; } .filters a.on { font-weight: 700; }
.message { max-width: 40rem; white-space: pre-wrap; word-break: break-word; }
.empty { color: #5b6375; padding: 1rem 0; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _status(status: str) -> str:
    if not status:
        return ""
    return f'<span class="status {escape(status)}">{escape(status)}</span>'


def _duration(seconds: Any) -> str:
    if seconds is None:
        return ""
    value = float(seconds)
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def jobs_page(rows: list[dict[str, Any]], status: str | None, statuses: tuple[str, ...], leader: bool) -> str:
    shown = [row for row in rows if status is None or row["status"] == status]
    links = ['<a href="/"' + (' class="on"' if status is None else "") + ">All</a>"]
    for name in statuses:
        count = sum(1 for row in rows if row["status"] == name)
        css = ' class="on"' if status == name else ""
        links.append(f'<a href="/?status={quote(name)}"{css}>{escape(name)} ({count})</a>')
    lines = []
    for row in shown:
        item = quote(row["item_id"])
        lines.append(
            "<tr>"
            f'<td><a href="/jobs/{item}">{escape(row["title"] or row["item_id"])}</a></td>'
            f"<td>{escape(row['task'])}</td>"
            f'<td data-status="{escape(row["status"])}">{_status(row["status"])}</td>'
            f"<td>{escape(row['last_run_started'])}</td>"
            f"<td>{_duration(row['last_run_duration'])}</td>"
            f"<td>{escape(row['next_run'])}</td>"
            f'<td class="message">{escape(row["message"])}</td>'
            "</tr>"
        )
    table = (
        "<table id=jobs><thead><tr><th>Job</th><th>Task</th><th>Status</th><th>Last run started</th>"
        "<th>Duration</th><th>Next run</th><th>Message</th></tr></thead><tbody>"
        + "".join(lines)
        + "</tbody></table>"
        if lines
        else '<p class="empty">No jobs' + (f" with status {escape(status)}" if status else "") + " yet.</p>"
    )
    role = "active poller" if leader else "standby replica"
    body = (
        "<h1>alloysync — jobs</h1>"
        f'<div class="sub">{len(rows)} job records · this serve replica is the {role} · '
        f"refreshes every {REFRESH_SECONDS} s · "
        '<a href="/api/jobs">JSON</a> · <a href="/metrics">metrics</a></div>'
        f'<div class="filters">{" ".join(links)}</div>{table}'
    )
    return _page("alloysync jobs", body)


def job_page(job: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    facts = [
        ("Status", _status(job["status"])),
        ("Task", escape(job["task"])),
        (
            "Schedule",
            escape(job["schedule"] or "once, now")
            + (f" ({escape(job['timezone'])})" if job["schedule"] else ""),
        ),
        ("Next run", escape(job["next_run"])),
        ("Runs", str(job["run_count"])),
        ("Message", f'<span class="message">{escape(job["message"])}</span>'),
        ("Alloy item", escape(job["item_id"])),
    ]
    fact_rows = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in facts)
    run_rows = "".join(
        "<tr>"
        f"<td>{escape(run['run_id'])}</td><td>{escape(run['state'])}</td><td>{escape(run['scheduled_at'])}</td>"
        f"<td>{escape(run['started'])}</td><td>{escape(run['finished'])}</td><td>{_duration(run['duration'])}</td>"
        f"<td>{run['attempts']}</td><td class=message>{escape(run['error'])}</td>"
        "</tr>"
        for run in runs
    )
    history = (
        "<table id=runs><thead><tr><th>Run</th><th>Outcome</th><th>Scheduled for</th><th>Started</th>"
        "<th>Finished</th><th>Duration</th><th>Attempts</th><th>Error</th></tr></thead><tbody>"
        + run_rows
        + "</tbody></table>"
        if runs
        else '<p class="empty">No runs yet.</p>'
    )
    body = (
        f'<p><a href="/">← all jobs</a></p><h1>{escape(job["title"] or job["item_id"])}</h1>'
        f"<table id=job>{fact_rows}</table><h2>Recent runs</h2>{history}"
    )
    return _page(f"alloysync — {job['title']}", body)


def not_found_page(item_id: str) -> str:
    return _page(
        "alloysync — not found",
        f'<p><a href="/">← all jobs</a></p><p>No job with item id {escape(item_id)}.</p>',
    )
