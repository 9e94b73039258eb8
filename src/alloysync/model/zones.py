"""Time zones: an IANA zone name → `ZoneInfo`, with an error that suggests a close name."""

from __future__ import annotations

import difflib
import zoneinfo

from alloysync.model.cron_fields import quote

__all__ = ["TimezoneError", "parse_timezone"]


class TimezoneError(ValueError):
    """An unknown or unusable time zone name; `zone` is the text that was given."""

    def __init__(self, zone: str, message: str) -> None:
        super().__init__(message)
        self.zone = zone


def parse_timezone(name: str | None) -> zoneinfo.ZoneInfo:
    """The IANA zone called `name`; empty or None means UTC.

    Raises `TimezoneError` (a ValueError) naming the zone, with a close match when there is one.
    """
    text = (name or "").strip()
    if not text:
        return zoneinfo.ZoneInfo("UTC")
    if text.lower() != "localtime":  # the host's own zone: not a stable, portable choice
        try:
            return zoneinfo.ZoneInfo(text)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            # Not found, a malformed key (absolute path, "..", NUL), a directory such as "Europe",
            # a name too long for the file system, or a file that is not time zone data.
            pass
    message = f"unknown time zone {quote(text)}"
    close = difflib.get_close_matches(text, _zone_names(), n=1, cutoff=0.6)
    if not close:  # catch a wrong case ("europe/london") too
        lowered = {zone.lower(): zone for zone in _zone_names()}
        close = [lowered[key] for key in difflib.get_close_matches(text.lower(), lowered, n=1)]
    if close:
        message += f'; did you mean "{close[0]}"?'
    else:
        message += "; use an IANA zone name such as Europe/London, America/New_York or UTC"
    raise TimezoneError(text, message)


def _zone_names() -> list[str]:
    return sorted(zone for zone in zoneinfo.available_timezones() if zone != "localtime")
