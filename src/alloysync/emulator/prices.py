"""The price feed at `/v1/bpi/currentprice.json`: Bitcoin prices in the shape of CoinDesk's old BPI API.

Prices take a small random step on every call (a multiplicative random walk, kept inside a plausible
band), so consecutive calls differ the way a live feed does. GBP and EUR follow the USD price
through exchange rates that wander a little too.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PRICE_PATH = "/v1/bpi/currentprice.json"

START_USD = 64_000.0
USD_BAND = (20_000.0, 250_000.0)
STEP_VOLATILITY = 0.0008  # per call, about 0.08 %


@dataclass(frozen=True)
class Currency:
    code: str
    symbol: str
    description: str
    start_rate_per_usd: float
    band: tuple[float, float]


CURRENCIES = (
    Currency("USD", "&#36;", "United States Dollar", 1.0, (1.0, 1.0)),
    Currency("GBP", "&pound;", "British Pound Sterling", 0.79, (0.70, 0.90)),
    Currency("EUR", "&euro;", "Euro", 0.92, (0.82, 1.02)),
)


def _london() -> ZoneInfo | None:
    try:
        return ZoneInfo("Europe/London")
    except ZoneInfoNotFoundError:
        return None


class PriceFeed:
    """The current (emulated) BTC price, moving a little on every read."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._usd = START_USD * self._rng.uniform(0.97, 1.03)
        self._rates_per_usd = {currency.code: currency.start_rate_per_usd for currency in CURRENCIES}
        self._london = _london()

    def current(self, now: datetime | None = None) -> dict[str, Any]:
        """Step the walk and return the feed document."""
        moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        self._step()
        return {
            "time": {
                "updated": moment.strftime("%b %-d, %Y %H:%M:%S UTC"),
                "updatedISO": moment.isoformat(),
                "updateduk": self._uk_time(moment),
            },
            "disclaimer": "Emulated prices from the alloysync emulator for demos and tests; not market data.",
            "chartName": "Bitcoin",
            "bpi": {currency.code: self._entry(currency) for currency in CURRENCIES},
        }

    def _step(self) -> None:
        low, high = USD_BAND
        self._usd = min(high, max(low, self._usd * math.exp(self._rng.gauss(0.0, STEP_VOLATILITY))))
        for currency in CURRENCIES:
            if currency.code == "USD":
                continue
            low, high = currency.band
            rate = self._rates_per_usd[currency.code] * math.exp(self._rng.gauss(0.0, STEP_VOLATILITY / 4))
            self._rates_per_usd[currency.code] = min(high, max(low, rate))

    def _entry(self, currency: Currency) -> dict[str, Any]:
        price = round(self._usd * self._rates_per_usd[currency.code], 4)
        return {
            "code": currency.code,
            "symbol": currency.symbol,
            "rate": f"{price:,.4f}",
            "description": currency.description,
            "rate_float": price,
        }

    def _uk_time(self, moment: datetime) -> str:
        if self._london is None:
            return moment.strftime("%b %-d, %Y at %H:%M UTC")
        local = moment.astimezone(self._london)
        return local.strftime("%b %-d, %Y at %H:%M ") + (local.tzname() or "")
