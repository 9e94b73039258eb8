"""Checking the `Authorization: Bearer <token>` header against the one accepted token, in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


class TokenCheck:
    """Accepts exactly one bearer token. The token itself is never exposed or logged."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the emulator needs a non-empty token")
        self._expected = token.encode()
        # Rate limits are kept per token; the key is a digest so the raw token is not kept around twice.
        self.key = hashlib.sha256(self._expected).hexdigest()[:16]

    def accepts(self, headers: Mapping[str, str]) -> bool:
        scheme, _, credentials = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self._expected)
