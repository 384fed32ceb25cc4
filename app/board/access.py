"""Who may see the board and from where: Host/Origin checks as for ``/mcp``, the login cookie, and the
headers every board answer carries.

With bearer auth on, a board request needs the signed login cookie (``cookie.py``); a page without it is
redirected to the login page, the event stream answers 401. With auth off the board is as open as
``/mcp`` is (the service then listens on loopback only, or was opened on purpose). The login form is a
POST checked for Origin like every other board request, and the cookie is ``SameSite=Strict``, so
another site can neither log a browser in nor ride its login.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from mcp.server.auth.provider import TokenVerifier
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.auth import scopes
from app.board.cookie import COOKIE_NAME, BoardLogin, CookieSigner
from app.services.caller import SCOPE_READ

LOGIN_PATH = "/board/login"
# Scripts and styles only from this origin, nothing inline, no framing, forms only to this origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under that policy a browser sends ``Origin: null`` with the login form's POST.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Visitor:
    """Who is looking: the login's subject, or None when auth is off."""

    subject: str | None


class BoardAccess:
    def __init__(
        self,
        verifier: TokenVerifier | None,
        security: TransportSecuritySettings,
        signer: CookieSigner,
        *,
        https: bool,
    ) -> None:
        self.verifier = verifier
        self._transport = TransportSecurityMiddleware(security)
        self.signer = signer
        self._https = https

    @property
    def auth_on(self) -> bool:
        return self.verifier is not None

    async def refuse_origin(self, request: Request) -> Response | None:
        """421/403 for a Host or Origin that ``/mcp`` would refuse too (DNS rebinding, cross-site)."""
        return await self._transport.validate_request(request, is_post=False)

    def visitor(self, request: Request, now: datetime) -> Visitor | None:
        """The visitor, or None when auth is on and the request carries no valid login cookie."""
        if not self.auth_on:
            return Visitor(subject=None)
        login = self.signer.verify(request.cookies.get(COOKIE_NAME), now)
        return Visitor(subject=login.subject) if login is not None else None

    async def login(self, token: str, now: datetime) -> BoardLogin | None:
        """A login for a token that grants at least ``tasks:read``, else None."""
        if self.verifier is None or not token:
            return None
        access = await self.verifier.verify_token(token)
        if access is None or SCOPE_READ not in scopes.effective(access.scopes):
            return None
        subject = access.subject or access.client_id
        return BoardLogin(subject=subject, expires_at=int(now.timestamp()) + self.signer.lifetime_seconds)

    def set_cookie(self, response: Response, request: Request, login: BoardLogin, now: datetime) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self.signer.issue(login.subject, now),
            max_age=self.signer.lifetime_seconds,
            path="/board",
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )

    def clear_cookie(self, response: Response, request: Request) -> None:
        response.delete_cookie(
            COOKIE_NAME, path="/board", httponly=True, samesite="strict", secure=self._secure(request)
        )

    def _secure(self, request: Request) -> bool:
        return self._https or request.url.scheme == "https"


def to_login(request: Request) -> RedirectResponse:
    """303 to the login page, coming back to this page afterwards."""
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(request.url.path)}", status_code=303)


def safe_next(value: str | None) -> str:
    """Where to go after login: a board path of ours, never another site (``//host``, ``/\\host``)."""
    if value and value.startswith("/board") and "//" not in value and "\\" not in value:
        return value
    return "/board"


def secure_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
