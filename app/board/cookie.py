"""The board's login cookie: who logged in and until when, signed by the server (HMAC-SHA256).

The value is ``base64url(json{sub, exp}).hex(hmac)``; nothing secret is in it, and only a holder of the
key can make one. The key is ``ORCHESTRATOR_BOARD_SECRET`` when set (so replicas behind one address
accept each other's cookies and logins survive a restart), else random per process (a restart logs
everyone out). The cookie is valid for ``ORCHESTRATOR_BOARD_SESSION_SECONDS`` from the login; the
server checks the expiry itself, whatever the browser keeps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime

COOKIE_NAME = "orchestrator_board"


@dataclass(frozen=True)
class BoardLogin:
    subject: str
    expires_at: int  # unix seconds


class CookieSigner:
    def __init__(self, key: bytes | None, lifetime_seconds: int) -> None:
        self._key = key if key else secrets.token_bytes(32)
        self.lifetime_seconds = lifetime_seconds

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode("utf-8", "replace"), hashlib.sha256).hexdigest()

    def issue(self, subject: str, now: datetime) -> str:
        expires = int(now.timestamp()) + self.lifetime_seconds
        body = json.dumps({"sub": subject, "exp": expires}, separators=(",", ":")).encode("utf-8")
        payload = base64.urlsafe_b64encode(body).decode("ascii").rstrip("=")
        return f"{payload}.{self._mac(payload)}"

    def verify(self, value: str | None, now: datetime) -> BoardLogin | None:
        """The login the cookie proves, or None (absent, forged, malformed or expired)."""
        if not value or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(self._mac(payload), mac):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            login = BoardLogin(subject=str(data["sub"]), expires_at=int(data["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        return login if login.expires_at > now.timestamp() else None
