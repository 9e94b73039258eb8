"""Fetching current BTC prices from a CoinDesk-shaped current-price feed.

The feed's URL comes from `COINREQUEST_PRICE_URL` (the emulator serves one at
`/v1/bpi/currentprice.json`, so everything works offline). The shape read is
`{"time": {"updatedISO"}, "bpi": {CODE: {"code", "rate_float", ...}}}`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import aiohttp

PRICE_URL_VARIABLE = "COINREQUEST_PRICE_URL"


class PriceFeedError(RuntimeError):
    """The price feed could not be read or did not have the expected shape."""


def price_url() -> str:
    url = os.environ.get(PRICE_URL_VARIABLE, "").strip()
    if not url:
        raise PriceFeedError(
            f"{PRICE_URL_VARIABLE} is not set: point it at a CoinDesk-shaped current-price feed, "
            "e.g. the emulator's http://127.0.0.1:8090/v1/bpi/currentprice.json"
        )
    return url


async def fetch_prices(url: str, currencies: list[str], limit_seconds: float = 10.0) -> dict[str, Any]:
    """Read the feed once; return `{"fetched_at", "source_time", "prices": {code: float}}`."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit_seconds)) as session,
            session.get(url) as response,
        ):
            if response.status != 200:
                raise PriceFeedError(f"price feed {url} answered HTTP {response.status}")
            document = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as error:
        raise PriceFeedError(f"cannot read price feed {url}: {type(error).__name__}: {error}") from error
    except ValueError as error:
        raise PriceFeedError(f"price feed {url} did not return JSON") from error
    return parse_price_document(document, currencies)


def parse_price_document(document: Any, currencies: list[str]) -> dict[str, Any]:
    if not isinstance(document, dict) or not isinstance(document.get("bpi"), dict):
        raise PriceFeedError("price feed answer has no 'bpi' object")
    bpi: dict[str, Any] = document["bpi"]
    wanted = [code.upper() for code in currencies] if currencies else sorted(bpi)
    prices: dict[str, float] = {}
    for code in wanted:
        entry = bpi.get(code)
        if not isinstance(entry, dict) or not isinstance(entry.get("rate_float"), int | float):
            raise PriceFeedError(f"price feed has no rate_float for currency {code!r}; it has {sorted(bpi)}")
        prices[code] = float(entry["rate_float"])
    source_time = (
        document.get("time", {}).get("updatedISO") if isinstance(document.get("time"), dict) else None
    )
    return {
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_time": source_time,
        "prices": prices,
    }
