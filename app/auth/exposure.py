"""Fail closed (DESIGN §7): a service reachable from other machines must say who may call it.

Binding to anything but loopback with no auth configured refuses to start unless the operator sets
``ORCHESTRATOR_ALLOW_UNAUTHENTICATED=true`` on purpose. Such a bind also needs
``ORCHESTRATOR_ALLOWED_HOSTS``: DNS-rebinding protection admits only the listed Host names, and the
loopback default would answer every remote client 421, so the service refuses to start rather than run
unreachable (``*`` turns the check off behind a proxy that controls Host). A wildcard bind with JWT auth
also needs ``ORCHESTRATOR_PUBLIC_URL``: the URL derived from ``0.0.0.0`` is ``http://127.0.0.1:{port}``,
so 401 answers would send remote OAuth clients to their own machine for the resource metadata and the
default JWT audience would be a URL no issuer puts in ``aud``.
"""

from __future__ import annotations

from app.settings import Settings, SettingsError

WILDCARD_BINDS = frozenset({"0.0.0.0", "::", "[::]", ""})  # noqa: S104  # names of binds, not a bind


class ExposureRefused(SettingsError):
    """The bind address exposes the service without the settings that make that safe."""


def exposure_problems(settings: Settings) -> list[str]:
    """What stops this configuration from serving beyond loopback; empty when it may start."""
    if settings.is_loopback_bind:
        return []
    where = f"ORCHESTRATOR_HOST={settings.host} is not a loopback address"
    problems = []
    if not settings.auth_configured and not settings.allow_unauthenticated:
        problems.append(
            f"{where} and no auth is configured: set ORCHESTRATOR_AUTH_TOKENS_FILE or ORCHESTRATOR_JWKS_URL, "
            "or set ORCHESTRATOR_ALLOW_UNAUTHENTICATED=true to serve without auth on purpose"
        )
    if not settings.allowed_hosts:
        problems.append(
            f"{where} and ORCHESTRATOR_ALLOWED_HOSTS is empty: list the host names clients use "
            "(e.g. orchestrator.example.com,orchestrator), or * when a proxy in front checks Host"
        )
    if settings.jwks_url and not settings.public_url and settings.host in WILDCARD_BINDS:
        problems.append(
            f"{where} and ORCHESTRATOR_JWKS_URL is set but ORCHESTRATOR_PUBLIC_URL is not: set it to the URL "
            "clients use (scheme://host[:port], e.g. https://orchestrator.example.com); without it 401 answers "
            f"name {settings.resolved_public_url}/mcp as the protected resource and the default JWT audience"
        )
    return problems


def check_exposure(settings: Settings) -> None:
    """Refuse an unsafe exposure.

    Raises:
        ExposureRefused: naming the settings to set.
    """
    problems = exposure_problems(settings)
    if problems:
        raise ExposureRefused("; ".join(problems))
