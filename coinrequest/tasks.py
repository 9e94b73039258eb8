"""The coinrequest tasks, registered with alloysync.

The seed pipeline is `coinrequest.get_btc_prices | coinrequest.process_prices |
coinrequest.compose_price_email`; add `| coinrequest.send_price_email` to mail the result.
"""

from __future__ import annotations

from typing import Any

from alloysync.tasks import task
from coinrequest.mail import configured_recipients, send_email
from coinrequest.prices import fetch_prices, price_url
from coinrequest.report import compose_email, summarise_prices

DEFAULT_CURRENCIES = ("USD", "GBP", "EUR")


@task("coinrequest.get_btc_prices", max_retries=3, time_limit=60)
async def get_btc_prices(currencies: list[str] | None = None) -> dict[str, Any]:
    """Fetch current BTC prices for the given currency codes from COINREQUEST_PRICE_URL."""
    return await fetch_prices(price_url(), list(currencies or DEFAULT_CURRENCIES))


@task("coinrequest.process_prices", max_retries=0, time_limit=30)
def process_prices(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Round the prices and note the highest and lowest currency."""
    return summarise_prices(snapshot)


@task("coinrequest.compose_price_email", max_retries=0, time_limit=30)
def compose_price_email(summary: dict[str, Any], subject_prefix: str = "BTC prices") -> dict[str, Any]:
    """Compose the price e-mail (subject and body) from processed prices."""
    return compose_email(summary, subject_prefix)


@task("coinrequest.send_price_email", max_retries=5, time_limit=60)
def send_price_email(email: dict[str, Any], recipients: list[str] | None = None) -> dict[str, Any]:
    """Send a composed e-mail over SMTP to the recipients (default: COINREQUEST_MAIL_TO)."""
    to = list(recipients or configured_recipients())
    message_id = send_email(str(email["subject"]), str(email["body"]), to)
    return {"sent_to": to, "message_id": message_id, "subject": email["subject"]}
