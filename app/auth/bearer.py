"""The service's bearer auth: which verifiers are on, and the ``AuthSettings`` the MCP SDK needs.

The SDK's middleware does the HTTP part (DESIGN §7): no token or a refused one is ``401`` with
``WWW-Authenticate: Bearer error="invalid_token", …, resource_metadata="…"``; a token without the
minimum scope (``tasks:read``, which every orchestrator scope includes) is ``403 insufficient_scope``.
Per-tool scopes are checked later, by ``app.auth.scopes``, and answer the structured ``forbidden``.

The tokens file and a JWKS may both be configured: a presented token is looked up among the static
hashes first, then verified as a JWT. Their subjects share one actor namespace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from starlette.routing import Route

from app.auth.jwks import JwtVerifier
from app.auth.tokens import StaticTokenVerifier, load_tokens_file
from app.services.caller import SCOPE_ADMIN, SCOPE_READ, SCOPE_WRITE
from app.settings import Settings, SettingsError

MCP_PATH = "/mcp"
# What the protected-resource metadata advertises: every scope a credential may carry, broadest last.
SCOPES_SUPPORTED = [SCOPE_READ, SCOPE_WRITE, SCOPE_ADMIN]


@dataclass(frozen=True)
class BearerAuth:
    """What ``build_server`` takes: ``token_verifier=`` and ``auth=``."""

    verifier: TokenVerifier
    settings: AuthSettings


class ChainedVerifier:
    """Asks each verifier in turn; the first to accept the token wins."""

    def __init__(self, verifiers: Sequence[TokenVerifier]) -> None:
        self._verifiers = tuple(verifiers)

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self._verifiers:
            found = await verifier.verify_token(token)
            if found is not None:
                return found
        return None


def _is_http_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def build_bearer_auth(settings: Settings) -> BearerAuth | None:
    """The configured bearer auth, or None when neither the tokens file nor a JWKS URL is set.

    Raises:
        SettingsError: the tokens file is unusable (naming the file and line), or the JWT settings are
            incomplete (naming the variable).
    """
    resource = settings.resolved_public_url + MCP_PATH
    verifiers: list[TokenVerifier] = []
    if settings.auth_tokens_file is not None:
        verifiers.append(StaticTokenVerifier(load_tokens_file(settings.auth_tokens_file)))
    if settings.jwks_url:
        if not _is_http_url(settings.jwks_url):
            raise SettingsError(f"ORCHESTRATOR_JWKS_URL={settings.jwks_url!r}: allowed: an http:// or https:// URL")
        if not settings.jwt_issuer:
            raise SettingsError(
                "ORCHESTRATOR_JWKS_URL is set but ORCHESTRATOR_JWT_ISSUER is not: set it to the issuer (`iss`) "
                "of the tokens to accept; a key set may be shared by several issuers"
            )
        audience = settings.jwt_audience or resource
        verifiers.append(JwtVerifier(settings.jwks_url, issuer=settings.jwt_issuer, audience=audience))
    if not verifiers:
        return None
    issuer_url = (
        settings.jwt_issuer
        if settings.jwks_url and settings.jwt_issuer and _is_http_url(settings.jwt_issuer)
        else settings.resolved_public_url
    )
    auth = AuthSettings(
        issuer_url=issuer_url,
        resource_server_url=resource,
        required_scopes=[SCOPE_READ],
        # The verifiers check the audience themselves (JWT `aud`; static tokens are ours by construction).
        validate_token_resource=False,
    )
    return BearerAuth(verifier=verifiers[0] if len(verifiers) == 1 else ChainedVerifier(verifiers), settings=auth)


def resource_metadata_routes(auth: AuthSettings) -> list[Route]:
    """The OAuth protected-resource metadata (RFC 9728) with every scope this service understands.

    The SDK serves the same document from ``AuthSettings.required_scopes``, which must stay
    ``[tasks:read]`` (the scope every call needs), so it would advertise only that scope and an OAuth
    client choosing scopes from it would ask for too little to write. Mounted ahead of the SDK's app,
    this route answers at the same well-known path.
    """
    if auth.resource_server_url is None:
        return []
    return create_protected_resource_routes(
        resource_url=auth.resource_server_url,
        authorization_servers=[auth.issuer_url],
        scopes_supported=list(SCOPES_SUPPORTED),
    )
