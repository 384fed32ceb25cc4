"""The JWT verifier against a JWKS served on 127.0.0.1 with keys made here."""

from __future__ import annotations

import logging
import socket

import jwt
import pytest

from app.auth.jwks import JwtVerifier, granted_scopes
from tests.support.auth import Issuer, JwksServer

pytestmark = pytest.mark.anyio
AUDIENCE = "orchestrator"


@pytest.fixture
def verifier(issuer: Issuer, jwks: JwksServer) -> JwtVerifier:
    return JwtVerifier(jwks.url, issuer=issuer.issuer, audience=AUDIENCE)


def test_scopes_come_from_scope_or_scp() -> None:
    assert granted_scopes({"scope": "tasks:read  admin"}) == ["tasks:read", "admin"]
    assert granted_scopes({"scp": ["tasks:write", 7]}) == ["tasks:write"]
    assert granted_scopes({"scp": "tasks:read tasks:write"}) == ["tasks:read", "tasks:write"]
    assert granted_scopes({"scope": None}) == []
    assert granted_scopes({}) == []


async def test_valid_token_gives_subject_expanded_scopes_and_expiry(verifier: JwtVerifier, issuer: Issuer) -> None:
    token = issuer.mint(AUDIENCE, subject="carol", scope="tasks:write openid", azp="ci-client")
    found = await verifier.verify_token(token)
    assert found is not None
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (found.subject, found.client_id, found.scopes, found.expires_at, found.claims) == (
        "carol",
        "ci-client",
        ["tasks:read", "tasks:write"],
        claims["exp"],
        {"iss": issuer.issuer},
    )
    assert token not in found.model_dump_json()


async def test_symmetric_and_unsigned_tokens_are_refused(verifier: JwtVerifier, issuer: Issuer) -> None:
    claims = jwt.decode(issuer.mint(AUDIENCE), options={"verify_signature": False})
    hmac_token = jwt.encode(claims, "a-shared-secret-of-enough-length-32b", algorithm="HS256", headers={"kid": "key-1"})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "key-1"})
    assert await verifier.verify_token(hmac_token) is None
    assert await verifier.verify_token(unsigned) is None


async def test_missing_or_ambiguous_subject_is_refused(verifier: JwtVerifier, issuer: Issuer) -> None:
    assert await verifier.verify_token(issuer.mint(AUDIENCE, subject=None)) is None  # type: ignore[arg-type]
    assert await verifier.verify_token(issuer.mint(AUDIENCE, subject="team/alice")) is None
    assert await verifier.verify_token(issuer.mint(AUDIENCE, exp=None)) is None  # expiry is required


async def test_token_without_kid_uses_the_only_signing_key(verifier: JwtVerifier, issuer: Issuer) -> None:
    claims = jwt.decode(issuer.mint(AUDIENCE), options={"verify_signature": False})
    token = jwt.encode(claims, issuer.key, algorithm="RS256")
    found = await verifier.verify_token(token)
    assert found is not None and found.subject == "carol"


async def test_unknown_kids_do_not_refetch_the_key_set_within_the_cooldown(
    verifier: JwtVerifier, issuer: Issuer, jwks: JwksServer
) -> None:
    assert await verifier.verify_token(issuer.mint(AUDIENCE)) is not None
    for n in range(5):
        stranger = Issuer(issuer=issuer.issuer, kid=f"random-{n}")
        assert await verifier.verify_token(stranger.mint(AUDIENCE)) is None
    assert await verifier.verify_token(issuer.mint(AUDIENCE)) is not None
    assert jwks.fetches == 1


async def test_unreachable_key_set_refuses_and_never_logs_the_token(
    issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    verifier = JwtVerifier(f"http://127.0.0.1:{closed_port}/jwks.json", issuer=issuer.issuer, audience=AUDIENCE)
    token = issuer.mint(AUDIENCE)
    with caplog.at_level(logging.DEBUG):
        assert await verifier.verify_token(token) is None
    assert [r.__dict__.get("event") for r in caplog.records if r.name == "app.auth"] == ["jwks_unavailable"]
    signature = token.rsplit(".", 1)[1]
    assert all(signature not in r.getMessage() and signature not in str(r.__dict__) for r in caplog.records)
