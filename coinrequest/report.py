"""Turning a price snapshot into a summary and the summary into an e-mail (pure functions)."""

from __future__ import annotations

from typing import Any

SYMBOLS = {"USD": "$", "GBP": "£", "EUR": "€"}


def summarise_prices(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Rounded prices, the cheapest and dearest currency by USD-equivalent order, and when."""
    prices: dict[str, float] = snapshot.get("prices", {})
    if not prices:
        raise ValueError("no prices to process: the snapshot's 'prices' is empty")
    rounded = {code: round(value, 2) for code, value in sorted(prices.items())}
    line = ", ".join(f"{code} {SYMBOLS.get(code, '')}{value:,.2f}" for code, value in rounded.items())
    return {
        "summary": f"BTC {line}",
        "fetched_at": snapshot.get("fetched_at"),
        "source_time": snapshot.get("source_time"),
        "prices": rounded,
        "currencies": sorted(rounded),
        "highest": max(rounded, key=lambda code: rounded[code]),
        "lowest": min(rounded, key=lambda code: rounded[code]),
    }


def compose_email(summary: dict[str, Any], subject_prefix: str = "BTC prices") -> dict[str, Any]:
    """A plain-text e-mail with one line per currency."""
    prices: dict[str, float] = summary.get("prices", {})
    if not prices:
        raise ValueError("no prices to put in the e-mail: the summary's 'prices' is empty")
    lines = [f"{code}: {SYMBOLS.get(code, '')}{value:,.2f}" for code, value in sorted(prices.items())]
    headline = ", ".join(lines)
    when = summary.get("source_time") or summary.get("fetched_at") or "now"
    body = "\n".join(
        [
            f"Bitcoin prices as of {when}:",
            "",
            *lines,
            "",
            "Sent by alloysync (coinrequest).",
        ]
    )
    return {"subject": f"{subject_prefix}: {headline}", "body": body}
