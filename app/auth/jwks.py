"""JWT bearer tokens verified against a JWKS URL (DESIGN §7), the alternative to the tokens file.

A token is accepted only when its signature verifies with a key from ``ORCHESTRATOR_JWKS_URL`` under an
asymmetric algorithm (never ``none``, never HMAC, which would let a public key act as a shared secret),
it has not expired, and its ``iss`` and ``aud`` are ours. ``sub`` names the actor; scopes come from the
``scope`` claim (space separated, RFC 8693/9068) or ``scp`` (a list or a string, as some providers do).

``jwt.PyJWKClient`` fetches and caches the key set (refetching at most once per cooldown for an unknown
``kid``, so random ``kid`` values cannot make us hammer the provider). Its fetch blocks, so it runs on a
worker thread; a key already in the cache is found without leaving the event loop.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

import anyio.to_thread
import jwt
from mcp.server.auth.provider import AccessToken

from app.auth import identity, scopes

log = logging.getLogger("app.auth")
# Asymmetric algorithms only: a JWKS publishes public keys, and an HMAC "key" built from one is forgeable.
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}
)
LEEWAY_SECONDS = 30  # clock skew allowed on nbf/iat; the SDK checks exp again without leeway
FETCH_TIMEOUT_SECONDS = 5.0
JWKS_CACHE_SECONDS = 300.0
UNKNOWN_KID_COOLDOWN_SECONDS = 30.0


def granted_scopes(claims: dict[str, Any]) -> list[str]:
    """Scope names from ``scope`` (space separated) or ``scp`` (list or space-separated string)."""
    raw = claims.get("scope", claims.get("scp"))
    names: Iterable[Any] = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else ()
    return [name for name in names if isinstance(name, str)]


class JwtVerifier:
    """The MCP SDK's ``TokenVerifier`` for JWTs signed by keys from a JWKS URL."""

    def __init__(self, jwks_url: str, *, issuer: str, audience: str) -> None:
        self._issuer = issuer
        self._audience = audience
        self._client = jwt.PyJWKClient(
            jwks_url,
            cache_jwk_set=True,
            lifespan=JWKS_CACHE_SECONDS,
            timeout=FETCH_TIMEOUT_SECONDS,
            cooldown_duration=UNKNOWN_KID_COOLDOWN_SECONDS,
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None  # not a JWT at all (e.g. a static token meant for the tokens file)
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            log.info("jwt_rejected", extra={"event": "jwt_rejected", "reason": "algorithm not allowed"})
            return None
        key = await self._signing_key(header.get("kid"))
        if key is None:
            return None
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            log.info("jwt_rejected", extra={"event": "jwt_rejected", "reason": type(exc).__name__})
            return None
        subject = claims["sub"]
        problem = identity.subject_problem(subject) if isinstance(subject, str) else "the subject is not a string"
        if problem is not None:
            log.warning("jwt_rejected", extra={"event": "jwt_rejected", "reason": problem})
            return None
        client_id = claims.get("client_id") or claims.get("azp") or subject
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        return AccessToken(
            token=f"sha256:{digest}",  # the SDK never needs the token itself; keep it out of memory
            client_id=str(client_id),
            subject=subject,
            scopes=sorted(scopes.effective(granted_scopes(claims))),
            expires_at=int(claims["exp"]),
            claims={"iss": claims["iss"]},
        )

    async def _signing_key(self, kid: object) -> jwt.PyJWK | None:
        cached = self._cached_key(kid)
        if cached is not None:
            return cached
        try:
            return await anyio.to_thread.run_sync(self._fetch_key, kid)
        except jwt.PyJWKClientConnectionError as exc:
            # The provider is unreachable: the token cannot be checked, so it is refused (fail closed).
            log.warning("jwks_unavailable", extra={"event": "jwks_unavailable", "reason": str(exc)[:200]})
        except jwt.PyJWTError as exc:
            log.info("jwt_rejected", extra={"event": "jwt_rejected", "reason": f"signing key: {type(exc).__name__}"})
        return None

    def _fetch_key(self, kid: object) -> jwt.PyJWK:
        if isinstance(kid, str):
            return self._client.get_signing_key(kid)
        # No kid: acceptable only when the set has exactly one signing key, so the choice is not a guess.
        keys = [key for key in self._client.get_jwk_set().keys if key.public_key_use in ("sig", None)]
        if len(keys) != 1:
            raise jwt.PyJWKClientError("the token names no kid and the key set has several signing keys")
        return keys[0]

    def _cached_key(self, kid: object) -> jwt.PyJWK | None:
        cache = self._client.jwk_set_cache
        jwk_set = cache.get() if cache is not None else None
        if not isinstance(jwk_set, jwt.PyJWKSet) or not isinstance(kid, str):
            return None
        for key in jwk_set.keys:
            if key.key_id == kid and key.public_key_use in ("sig", None):
                return key
        return None
