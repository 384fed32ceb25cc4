"""Which verifiers the settings turn on, and the AuthSettings handed to the SDK."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.auth.bearer import build_bearer_auth
from app.settings import Settings, SettingsError
from tests.support.auth import Issuer, JwksServer, write_tokens_file

pytestmark = pytest.mark.anyio


def test_no_tokens_file_and_no_jwks_means_auth_off(tmp_path: Path) -> None:
    assert build_bearer_auth(Settings(data_dir=tmp_path, jwks_url="", auth_tokens_file="")) is None


def test_jwks_needs_an_issuer_and_an_http_url(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ORCHESTRATOR_JWT_ISSUER is not"):
        build_bearer_auth(Settings(jwks_url="https://idp.test/jwks"))
    with pytest.raises(SettingsError, match="ORCHESTRATOR_JWKS_URL='file:///etc/keys'"):
        build_bearer_auth(Settings(jwks_url="file:///etc/keys", jwt_issuer="https://idp.test"))


async def test_tokens_file_and_jwks_together_accept_both_kinds_and_the_audience_defaults_to_the_resource(
    tmp_path: Path, issuer: Issuer, jwks: JwksServer
) -> None:
    tokens = write_tokens_file(tmp_path / "tokens", {"ci-bot": "admin"})
    settings = Settings(
        auth_tokens_file=tmp_path / "tokens",
        jwks_url=jwks.url,
        jwt_issuer=issuer.issuer,
        public_url="https://orchestrator.example.com",
    )
    bearer = build_bearer_auth(settings)
    assert bearer is not None
    assert (str(bearer.settings.resource_server_url), str(bearer.settings.issuer_url)) == (
        "https://orchestrator.example.com/mcp",
        "https://issuer.test",
    )
    static = await bearer.verifier.verify_token(tokens["ci-bot"])
    signed = await bearer.verifier.verify_token(issuer.mint("https://orchestrator.example.com/mcp", subject="carol"))
    foreign_audience = await bearer.verifier.verify_token(issuer.mint("https://elsewhere.test/mcp"))
    assert static is not None and static.subject == "ci-bot"
    assert signed is not None and signed.subject == "carol"
    assert foreign_audience is None
