"""The webhook: a wrong or missing secret gets 401 and syncs nothing; the right one syncs at once."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from tests.support.system import WEBHOOK_SECRET, System


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_webhook_authenticates_and_syncs_the_named_item(system: System) -> None:
    system.start_serve(ALLOYSYNC_POLL_INTERVAL="3600", ALLOYSYNC_FULL_SYNC_INTERVAL="3600")
    system.start_worker()
    time.sleep(1)  # let the startup pass finish: from now on only the webhook syncs
    item = system.create_job("hooked", "tests.record", params={"label": "hook"})
    url = f"{system.url()}/webhooks/alloy"
    body = json.dumps({"itemId": item, "designCode": "designs_alloysyncJobs"}).encode()

    status, answer = post(url, body, {"Content-Type": "application/json"})
    assert status == 401 and "X-Alloysync-Secret" in str(answer["error"])
    status, _ = post(url, body, {"X-Alloysync-Secret": "wrong-secret"})
    assert status == 401
    status, answer = post(url, b"{not json", {"X-Alloysync-Secret": WEBHOOK_SECRET})
    assert status == 400 and "not JSON" in str(answer["error"])
    status, _ = post(url, b"x" * 70_000, {"X-Alloysync-Secret": WEBHOOK_SECRET})
    assert status == 413
    time.sleep(2)
    assert system.api("/api/jobs")["jobs"] == []
    assert system.executions() == []
    assert system.job(item)["status"] is None

    status, answer = post(url, body, {"X-Alloysync-Secret": WEBHOOK_SECRET})
    assert status == 202 and answer["accepted"] == [item]
    system.wait_for_status(item, "Succeeded", timeout=15)
    assert len(system.executions("hook")) == 1
