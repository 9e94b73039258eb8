"""Fault knobs for tests: added latency, a rate of injected errors, and a full outage.

- `latency_ms`: added to every request on the faulty surface (the Alloy API and the price feed).
- `feed_latency_ms`: added to price-feed requests only (makes a price-fetching task slow without
  slowing the Alloy API: tests use it to watch a run in its Running state).
- `error_rate`: the fraction of those requests answered with an error instead; of these errors a
  share (`html_error_share`, default 0.2) is a non-JSON HTML 502 page, as a proxy in front of a real
  API sends now and then, and the rest a 500 with an Alloy error body.
- `down`: every request fails; `down_mode` "503" answers 503 with an error body (category
  `SystemUnderMaintenance`), "reset" closes the connection without any answer.
- `signature_mismatch_status` (default 409): the HTTP status of a stale-signature error (categories
  `ItemSignatureMismatch` and `DesignSignatureMismatch`). Alloy does not document that status, so a
  client must recognise the category whatever the status; tests set e.g. 400 to prove it does.
- `signature_mismatch_error_code` (default null: the category): the `errorCode` of those errors, so
  a test can leave the category as the only sign of a stale signature.
The admin API and the health check are never faulty.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from alloysync.emulator.checks import is_number
from alloysync.emulator.errors import (
    SIGNATURE_MISMATCH_STATUS,
    SIGNATURE_MISMATCHES,
    AlloyError,
    Category,
    bad_request,
    internal_error,
)

BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


class DownMode(StrEnum):
    UNAVAILABLE = "503"
    RESET = "reset"


class InjectedFailure(StrEnum):
    SERVER_ERROR = "500"
    BAD_GATEWAY_HTML = "502"


@dataclass(frozen=True)
class FaultConfig:
    latency_ms: float = 0.0
    feed_latency_ms: float = 0.0
    error_rate: float = 0.0
    html_error_share: float = 0.2
    down: bool = False
    down_mode: DownMode = DownMode.UNAVAILABLE
    signature_mismatch_status: int = SIGNATURE_MISMATCH_STATUS
    signature_mismatch_error_code: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "down_mode": str(self.down_mode)}


class Faults:
    """The current fault settings and the dice that decide which request fails."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.config = FaultConfig()
        self._rng = rng or random.Random()

    @property
    def latency_seconds(self) -> float:
        return self.config.latency_ms / 1000.0

    def pick_failure(self) -> InjectedFailure | None:
        """Whether this request gets an injected error (by `error_rate`), and which."""
        if self.config.error_rate <= 0 or self._rng.random() >= self.config.error_rate:
            return None
        if self._rng.random() < self.config.html_error_share:
            return InjectedFailure.BAD_GATEWAY_HTML
        return InjectedFailure.SERVER_ERROR

    def shape(self, error: AlloyError) -> AlloyError:
        """The error as the knobs make it: a stale signature with the configured status and code."""
        if error.category not in SIGNATURE_MISMATCHES:
            return error
        return error.answered_with(
            self.config.signature_mismatch_status, self.config.signature_mismatch_error_code
        )

    def configure(self, updates: Mapping[str, Any]) -> FaultConfig:
        """Apply a partial change from the admin API; 400 on an unknown knob or a bad value."""
        changes: dict[str, Any] = {}
        for key, value in updates.items():
            if key in ("latency_ms", "feed_latency_ms"):
                if not is_number(value) or not 0 <= value <= 120_000:
                    raise bad_request(f"{key} must be a number of milliseconds in [0, 120000]")
                changes[key] = float(value)
            elif key in ("error_rate", "html_error_share"):
                if not is_number(value) or not 0 <= value <= 1:
                    raise bad_request(f"{key} must be a fraction in [0, 1]")
                changes[key] = float(value)
            elif key == "down":
                if not isinstance(value, bool):
                    raise bad_request("down must be true or false")
                changes[key] = value
            elif key == "down_mode":
                if value not in ("503", "reset"):
                    raise bad_request(
                        'down_mode must be "503" (answer 503) or "reset" (close the connection)'
                    )
                changes[key] = DownMode(value)
            elif key == "signature_mismatch_status":
                if not isinstance(value, int) or isinstance(value, bool) or not 400 <= value <= 499:
                    raise bad_request(
                        "signature_mismatch_status must be an HTTP client-error status, 400 to 499"
                    )
                changes[key] = value
            elif key == "signature_mismatch_error_code":
                if value is not None and not isinstance(value, str):
                    raise bad_request(
                        "signature_mismatch_error_code must be a string, or null to send the category"
                    )
                changes[key] = value
            else:
                raise bad_request(
                    f"unknown fault {key!r}; known: latency_ms, feed_latency_ms, error_rate, "
                    "html_error_share, down, down_mode, signature_mismatch_status, "
                    "signature_mismatch_error_code"
                )
        self.config = replace(self.config, **changes)
        return self.config

    def clear(self) -> None:
        self.config = FaultConfig()


def injected_server_error() -> AlloyError:
    return internal_error("an unexpected error occurred (injected by the emulator)")


def service_down() -> AlloyError:
    return AlloyError(
        503,
        Category.SYSTEM_UNDER_MAINTENANCE,
        "the service is temporarily unavailable (the emulator's down fault is on)",
    )
