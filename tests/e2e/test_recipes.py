"""The five recipes of docs/recipes.md, as written there, on real processes: serve and a worker,
the emulator (with the recipe designs), a loopback HTTP receiver and an SMTP server (aiosmtpd).

Each record is created as the page shows it (with its cron schedule) and run at once with
RunRequested, as a user would try a new job. Only the contractor's URL is replaced by the
receiver's loopback address.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alloysync.local.redis_server import RedisServer
from tests.support.emulator import EmulatorProcess
from tests.support.receiver import Receiver
from tests.support.recipes import (
    DEFECTS,
    HIGHWAY_JOBS,
    WORK_ORDER_JOBS,
    WORK_ORDERS,
    days_ago,
    defect,
    define_recipe_designs,
    recipe,
    values_of,
)
from tests.support.smtp import Inbox, smtp_inbox
from tests.support.system import System, system_fixture

CONTRACTOR_URL = "https://api.contractor.example/v1/"
CONTRACTOR_SECRET = "Bearer contractor-token-1"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_inbox() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    peer = Receiver().start()
    yield peer
    peer.stop()


@pytest.fixture
def system(
    tmp_path: Path, redis_server: RedisServer, emulator: EmulatorProcess, inbox: Inbox, receiver: Receiver
) -> Iterator[System]:
    define_recipe_designs(emulator)
    yield from system_fixture(
        tmp_path,
        redis_server,
        emulator,
        ALLOYSYNC_BUILTIN_ALLOY_DESIGNS=f"{DEFECTS},{HIGHWAY_JOBS}",
        ALLOYSYNC_BUILTIN_HTTP_ALLOW=f"{receiver.url}/v1/",
        ALLOYSYNC_BUILTIN_HTTP_SECRETS=f'{{"contractor": "{CONTRACTOR_SECRET}"}}',
        ALLOYSYNC_BUILTIN_MAIL_ALLOW="council.example",
        ALLOYSYNC_SMTP_HOST="127.0.0.1",
        ALLOYSYNC_SMTP_PORT=str(inbox.port),
        ALLOYSYNC_SMTP_FROM="alloysync@council.example",
    )


def create_recipe(system: System, title: str, replace: tuple[str, str] | None = None) -> str:
    record = recipe(title)
    params = record["params"]
    if replace is not None:
        params = json.loads(json.dumps(params).replace(*replace))
    return system.create_job(
        record["title"],
        record["task"],
        params=params,
        schedule=record["schedule"],
        timezone=record["timezone"],
        run_requested=True,
    )


def wait_for_run(system: System, item: str, count: int, timeout: float = 60) -> dict[str, Any]:
    """The record once its `count`-th run ended; fails with the message if a run failed."""

    def ended() -> dict[str, Any] | None:
        job = system.job(item)
        if job["status"] in ("Failed", "Invalid"):
            pytest.fail(f"{job['title']}: {job['status']}: {job['message']}")
        # A requested run of a cron job ends Succeeded (a cron fire would go back to Scheduled).
        return job if (job["run_count"] or 0) >= count and job["status"] == "Succeeded" else None

    return system.wait_until(ended, timeout, f"run {count} of {item}")


def run_again(system: System, item: str, count: int) -> dict[str, Any]:
    system.wait_until(lambda: system.job(item)["run_requested"] is False, 20, "RunRequested to be reset")
    system.edit_job(item, run_requested=True)
    return wait_for_run(system, item, count)


def test_defects_digest(system: System, inbox: Inbox) -> None:
    system.emulator.bulk_create(
        [
            defect("D-101", "Open", "High", age_days=45, location="Mill Lane"),
            defect("D-102", "Open", "Urgent", age_days=31, location="Quay Street"),
            defect("D-103", "Open", "Low", age_days=60),  # low priority: not escalated
            defect("D-104", "Open", "High", age_days=10),  # too recent
            defect("D-105", "Closed", "High", age_days=90),  # closed
        ]
    )
    system.start_serve()
    system.start_worker()
    item = create_recipe(system, "Defects digest")
    job = wait_for_run(system, item, 1)
    assert (
        job["message"].startswith("Succeeded in ") and "e-mailed 'Defects digest: 2 defects" in job["message"]
    )
    defects = values_of(system.emulator, DEFECTS)
    escalated = sorted(
        ref for ref, values in defects.items() if values["attributes_defectsStatus"] == "Escalated"
    )
    assert escalated == ["D-101", "D-102"]
    assert (
        defects["D-101"]["attributes_defectsEscalated"]
        and "attributes_defectsEscalated" not in defects["D-103"]
    )
    (recipients, message), *_ = inbox.wait_for(1)
    assert recipients == ["highways@council.example"]
    assert message["Subject"] == "Defects digest: 2 defects older than 30 days escalated"
    lines = message.get_content().splitlines()
    assert lines[0] == "Open for more than 30 days, now Escalated:"
    assert lines[2].startswith("D-101  High  reported ") and lines[2].endswith("Mill Lane")
    assert lines[3].startswith("D-102  Urgent  reported ") and lines[3].endswith("Quay Street")
    # The next run finds nothing left to escalate and says so.
    run_again(system, item, 2)
    assert [m["Subject"] for _r, m in inbox.wait_for(2)][
        1
    ] == "Defects digest: 0 defects older than 30 days escalated"
    assert "None this week." in inbox.messages[1][1].get_content()


def test_close_jobs_whose_work_orders_are_completed(system: System) -> None:
    emulator = system.emulator
    statuses = {"J-1": "In progress", "J-2": "In progress", "J-3": "Closed", "J-4": "In progress"}
    jobs = emulator.bulk_create(
        [
            {"designCode": HIGHWAY_JOBS, "attributes": [
                {"attributeCode": "attributes_highwayJobsReference", "value": reference},
                {"attributeCode": "attributes_highwayJobsStatus", "value": status},
            ]}
            for reference, status in statuses.items()
        ]
    )  # fmt: skip
    ids = {job["attributes"][0]["value"]: job["itemId"] for job in jobs}

    def work_order(reference: str, status: str, linked: list[str]) -> dict[str, Any]:
        return {"designCode": WORK_ORDERS, "attributes": [
            {"attributeCode": "attributes_workOrdersReference", "value": reference},
            {"attributeCode": "attributes_workOrdersStatus", "value": status},
            {"attributeCode": WORK_ORDER_JOBS, "value": [ids[job] for job in linked]},
        ]}  # fmt: skip

    emulator.bulk_create(
        [
            work_order("W-1", "Completed", ["J-1", "J-3"]),
            work_order("W-2", "Completed", ["J-2"]),
            work_order("W-3", "In progress", ["J-4"]),
        ]
    )
    system.start_serve()
    system.start_worker()
    item = create_recipe(system, "Close jobs whose work orders are completed")
    job = wait_for_run(system, item, 1)
    stored = values_of(emulator, HIGHWAY_JOBS)
    assert {ref: values["attributes_highwayJobsStatus"] for ref, values in stored.items()} == {
        "J-1": "Closed",
        "J-2": "Closed",
        "J-3": "Closed",
        "J-4": "In progress",
    }
    assert (
        stored["J-1"]["attributes_highwayJobsClosed"] and "attributes_highwayJobsClosed" not in stored["J-3"]
    )
    assert sorted(row["ref"] for row in job["result"]) == ["J-1", "J-2"]


def test_send_escalated_defects_to_the_contractor(system: System, receiver: Receiver) -> None:
    system.emulator.bulk_create(
        [
            defect("D-201", "Escalated", "Urgent", age_days=40, location="Mill Lane"),
            defect("D-202", "Escalated", "Low", age_days=40),  # not high or urgent
            defect("D-203", "Open", "High", age_days=40),  # not escalated
            defect("D-204", "Escalated", "High", age_days=35, location="Quay Street"),
        ]
    )
    system.start_serve()
    system.start_worker()
    item = create_recipe(system, "Send escalated defects", replace=(CONTRACTOR_URL, f"{receiver.url}/v1/"))
    wait_for_run(system, item, 1)
    sent = sorted(receiver.received, key=lambda request: str(request.body))
    assert [request.body for request in sent] == [
        {"reference": "D-201", "priority": "Urgent", "location": "Mill Lane"},
        {"reference": "D-204", "priority": "High", "location": "Quay Street"},
    ]
    assert {request.headers["Authorization"] for request in sent} == {CONTRACTOR_SECRET}
    defects = values_of(system.emulator, DEFECTS)
    numbers = {defects[ref]["attributes_defectsContractorJob"] for ref in ("D-201", "D-204")}
    assert numbers == {"C-1001", "C-1002"}
    assert {defects[ref]["attributes_defectsStatus"] for ref in ("D-201", "D-204")} == {"Sent to contractor"}
    assert "attributes_defectsContractorJob" not in defects["D-202"]
    assert CONTRACTOR_SECRET not in str(system.job(item))  # the secret is in no record...
    assert CONTRACTOR_SECRET not in system.logs()  # ...and in no log line
    # The next run has nothing left to send.
    run_again(system, item, 2)
    assert len(receiver.received) == 2


def test_weekly_work_orders_report(system: System, inbox: Inbox) -> None:
    def work_order(
        reference: str, status: str, completed_days_ago: float | None, cost: float
    ) -> dict[str, Any]:
        attributes = [
            {"attributeCode": "attributes_workOrdersReference", "value": reference},
            {"attributeCode": "attributes_workOrdersStatus", "value": status},
            {"attributeCode": "attributes_workOrdersCost", "value": cost},
        ]
        if completed_days_ago is not None:
            attributes.append(
                {"attributeCode": "attributes_workOrdersCompleted", "value": days_ago(completed_days_ago)}
            )
        return {"designCode": WORK_ORDERS, "attributes": attributes}

    system.emulator.bulk_create(
        [
            work_order("W-12", "Completed", 2, 1250),
            work_order("W-10", "Completed", 6, 80),
            work_order("W-07", "Completed", 20, 300),  # last month
            work_order("W-13", "In progress", None, 10),
        ]
    )
    system.start_serve()
    system.start_worker()
    item = create_recipe(system, "Weekly work orders report")
    wait_for_run(system, item, 1)
    (recipients, message), *_ = inbox.wait_for(1)
    assert recipients == ["finance@council.example", "highways@council.example"]
    assert message["Subject"].startswith("Work orders completed in the week to ") and message[
        "Subject"
    ].endswith(": 2")
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and "(Weekly work orders report)" in body.get_content()
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == "work-orders.csv"
    lines = attachment.get_content().splitlines()
    assert lines[0] == "reference,completed,cost"
    assert [line.split(",")[0] for line in lines[1:]] == ["W-10", "W-12"]
    assert lines[2].endswith(",1250") and lines[2].split(",")[1] == days_ago(2)[:10]


def test_urgent_defects_alarm_emails_when_the_count_crosses(system: System, inbox: Inbox) -> None:
    created = system.emulator.bulk_create(
        [defect(f"D-3{n:02d}", "Open", "Urgent", age_days=1) for n in range(9)]
    )
    system.start_serve()
    system.start_worker()
    item = create_recipe(system, "Urgent defects alarm")
    job = wait_for_run(system, item, 1)
    assert "9: not above 10; nothing more to do" in job["message"] and inbox.messages == []
    system.emulator.bulk_create([defect(f"D-3{n:02d}", "Open", "Urgent", age_days=0) for n in range(9, 12)])
    job = run_again(system, item, 2)
    assert "e-mailed '12 urgent defects are open (above 10)'" in job["message"]
    (recipients, message), *_ = inbox.wait_for(1)
    assert recipients == ["duty-manager@council.example"]
    content = message.get_content()
    assert "Open urgent defects (12, at the previous check 9):" in content and "D-311" in content
    job = run_again(system, item, 3)  # still above: nobody is e-mailed again
    assert "still past the threshold" in job["message"]
    for defect_item in created[:5]:
        system.emulator.edit_item(defect_item["itemId"], {"attributes_defectsStatus": "Closed"})
    job = run_again(system, item, 4)
    assert "7: not above 10" in job["message"]
    assert len(inbox.messages) == 1


def test_a_recipe_off_the_allow_lists_is_invalid_and_runs_nothing(system: System, receiver: Receiver) -> None:
    system.start_serve()
    system.start_worker()
    item = create_recipe(system, "Send escalated defects")  # the contractor's real URL: not allowed here
    job = system.wait_for_status(item, "Invalid", timeout=30)
    assert "step 3 (http.request)" in job["message"] and "not under an allowed prefix" in job["message"]
    escape = system.create_job(
        "escape", "data.render", params={"template": "{{ ''.__class__.__mro__ }}"}, run_requested=True
    )
    job = system.wait_for_status(escape, "Invalid", timeout=30)
    assert "is off limits" in job["message"]
    assert receiver.received == [] and not job["run_count"]
