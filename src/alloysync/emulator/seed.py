"""The demo data (`--seed demo`): five job records that show what alloysync does.

One-off now, cron every minute, once at a set time (45 s after seeding), a paused weekly job, and a
job naming an unknown task (it must end up `Invalid`). The attributes alloysync writes (Status,
Message, ...) are absent at first, as on a record a user has just created.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alloysync.emulator.store import ItemDraft
from alloysync.settings import JobAttributeCodes

SEED_NAMES = ("none", "demo")
RUN_AT_DELAY = timedelta(seconds=45)

PRICE_PIPELINE = "coinrequest.get_btc_prices | coinrequest.process_prices | coinrequest.compose_price_email"
PRICES_ONLY = "coinrequest.get_btc_prices | coinrequest.process_prices"


def demo_jobs(design_code: str, codes: JobAttributeCodes, now: datetime) -> list[ItemDraft]:
    """The five demo job records; `now` fixes the time of the run-at job."""
    run_at = (now.astimezone(UTC) + RUN_AT_DELAY).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")

    def job(
        title: str, *, enabled: bool, task: str, params: dict[str, Any], schedule: str, timezone: str
    ) -> ItemDraft:
        attributes = {
            codes.title: title,
            codes.enabled: enabled,
            codes.task: task,
            codes.params: params,
            codes.schedule: schedule,
            codes.timezone: timezone,
        }
        return ItemDraft(design_code=design_code, attributes=attributes)

    return [
        job(
            "BTC price e-mail (one-off)",
            enabled=True,
            task=PRICE_PIPELINE,
            params={"currencies": ["USD", "GBP", "EUR"]},
            schedule="",
            timezone="",
        ),
        job(
            "BTC prices every minute",
            enabled=True,
            task=PRICES_ONLY,
            params={"currencies": ["USD", "EUR"]},
            schedule="* * * * *",
            timezone="Europe/London",
        ),
        job(
            "BTC price e-mail at a set time",
            enabled=True,
            task=PRICE_PIPELINE,
            params={},
            schedule=run_at,
            timezone="",
        ),
        job(
            "Weekly price report (paused)",
            enabled=False,
            task=PRICE_PIPELINE,
            params={},
            schedule="0 8 * * mon",
            timezone="Europe/London",
        ),
        job(
            "Broken job: unknown task",
            enabled=True,
            task="coinrequest.fetch_everything",
            params={},
            schedule="",
            timezone="",
        ),
    ]
