"""The Settings model: the only reader of ``os.environ``.

Every knob of the service is an ``ORCHESTRATOR_*`` variable validated once, before anything starts, so a
bad value stops the process with the variable's name, the value and what is allowed instead of failing
minutes later inside a request. Nothing here imports from the rest of the app.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class SettingsError(Exception):
    """A setting has a bad value; the message names the variable, the value and what is allowed."""


class Settings(BaseSettings):
    """Validated configuration, read from ``ORCHESTRATOR_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore", frozen=True, populate_by_name=True)

    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL or SQLite URL; empty means a SQLite file in data_dir.",
    )
    data_dir: Path = Path("./.orchestrator")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    auth_tokens_file: Path | None = None
    jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    allow_unauthenticated: bool = False
    # NoDecode: the env value reaches _split_hosts as written (a comma list), not JSON-decoded first.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    stateless_http: bool = False
    lease_seconds: int = Field(default=900, ge=30, le=86400)
    max_attempts: int = Field(default=3, ge=1, le=100)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    db_statement_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    drain_timeout_seconds: float = Field(default=30.0, ge=0, le=3600)
    auto_migrate: bool = False
    roles_file: Path | None = None
    lease_sweep_interval_seconds: float = Field(default=15.0, gt=0, le=3600)
    maintenance_interval_seconds: float = Field(default=300.0, gt=0, le=86400)
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "ORCHESTRATOR_OTLP_ENDPOINT"),
    )
    otel_service_name: str = Field(
        default="task-orchestrator",
        validation_alias=AliasChoices("OTEL_SERVICE_NAME", "ORCHESTRATOR_SERVICE_NAME"),
    )
    max_request_body_bytes: int | None = Field(
        default=None,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest HTTP request body; unset means what a maximum-size call needs (request_body_limit).",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#\s]+$",
        description="How clients reach this service (scheme://host[:port], no path); names the protected "
        "resource {public_url}/mcp in 401 answers. Empty means http://{host}:{port}.",
    )

    @field_validator("auth_tokens_file", "jwks_url", "jwt_issuer", "jwt_audience", "public_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Deployment templates often render unset options as empty variables; that means "not set".
        return None if isinstance(value, str) and not value.strip() else value

    stale_pending_days: int = Field(
        default=7, ge=1, le=3650, description="scan_cleanup reports pending tasks untouched for this many days."
    )
    db_circuit_failure_threshold: int = Field(
        default=5, ge=1, le=1000, description="Consecutive connection failures that open the database circuit."
    )
    db_circuit_cooldown_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="The longest the open circuit waits between probes; it starts at a fraction of a second "
        "and doubles after each failed probe up to this.",
    )
    rate_limit_per_minute: int = Field(
        default=1200, ge=1, le=1_000_000, description="Calls a minute each actor may make (a token bucket)."
    )
    rate_limit_burst: int = Field(
        default=100, ge=1, le=100_000, description="Calls an actor may make at once before its rate applies."
    )
    max_in_flight_per_actor: int = Field(
        default=16, ge=1, le=10_000, description="Tool calls one actor may have running at once (waits count)."
    )
    max_sessions_per_principal: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Legacy (2025-11-25) MCP sessions one principal (token subject, else client name) may hold.",
    )
    max_listen_streams_per_principal: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Open 2026-07-28 subscriptions/listen streams one principal (token subject, else client "
        "name) may hold.",
    )
    max_subscriptions_per_session: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Resources one legacy (2025-11-25) MCP session (resources/subscribe) or one "
        "subscriptions/listen stream may follow.",
    )
    session_idle_seconds: float = Field(
        default=600.0, gt=0, le=86400, description="A legacy MCP session with no request for this long is closed."
    )
    request_body_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="A request body not fully received in this time is cut off."
    )
    db_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="The most one call waits on the database in all: pool checkout, connect, statements, commit.",
    )
    max_context_bytes: int = Field(
        default=65_536, ge=1024, le=16 * 1024 * 1024, description="Largest `context` of a task, as compact JSON."
    )
    max_artifact_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=32 * 1024 * 1024,
        description="Largest `detailed_work` of orchestrator_complete_task, in bytes of UTF-8.",
    )

    @property
    def request_body_limit(self) -> int:
        """``max_request_body_bytes``, else what the largest legal call needs: a ``detailed_work`` at its bound
        with every byte JSON-escaped to two (quotes, backslashes, newlines), plus 1 MiB for the rest of the
        call (a summary, 500 file paths). A bigger body could only be refused after it was parsed, and parsing
        is where a hostile body costs memory (DESIGN §7)."""
        if self.max_request_body_bytes is not None:
            return self.max_request_body_bytes
        return 2 * self.max_artifact_bytes + 1024 * 1024

    max_wait_seconds: int = Field(
        default=300, ge=1, le=3600, description="The longest orchestrator_next_task(wait_seconds) may wait."
    )
    wait_recheck_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="PostgreSQL: how often each replica checks its LISTEN connection with one query on that "
        "connection (a dead one is replaced and the waiters re-check the queue; idle waiters query nothing). "
        "SQLite: how often waiting next_task calls re-check the queue without a signal (another process may "
        "write the file).",
    )
    board: bool = Field(default=True, description="Serve the supervisors' board at /board (read-only HTML).")
    board_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs the board's login cookie; set the same value on every replica so a login "
        "holds across replicas and restarts. Empty means a random key per process.",
    )
    board_session_seconds: int = Field(
        default=8 * 3600, ge=60, le=7 * 86400, description="How long a board login lasts before it asks again."
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        # Operators write a comma-separated list in an env var; JSON lists are accepted too.
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                return json.loads(value)
            except ValueError:
                return value  # reported by the list validation, naming the variable
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _bare_hosts(cls, value: list[str]) -> list[str]:
        # The entries are matched against the Host header, which never holds a scheme or a path: a URL here
        # matched no request, so the service started, reported ready and answered every POST /mcp with 421.
        bad = [entry for entry in value if any(mark in entry for mark in "/@?#")]
        if bad:
            raise ValueError(
                f"not host names: {', '.join(map(repr, bad))}; give bare host names (host or host:port, "
                "e.g. orch.example.com or 127.0.0.1:8793), comma-separated, or * for any"
            )
        return value

    @property
    def is_loopback_bind(self) -> bool:
        """True when the server listens only on this machine (auth may then be off)."""
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False

    @property
    def auth_configured(self) -> bool:
        return self.auth_tokens_file is not None or self.jwks_url is not None

    @property
    def resolved_public_url(self) -> str:
        """The service's external base URL: ``public_url``, else one built from the bind address."""
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "[::]", "") else self.host  # noqa: S104  # a wildcard bind is not an address clients can use
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"http://{host}:{self.port}"

    def resolved_database_url(self) -> str:
        """The SQLAlchemy async URL: plain user-written forms mapped to the async drivers."""
        if self.database_url is None or not self.database_url.get_secret_value().strip():
            return f"sqlite+aiosqlite:///{(self.data_dir / 'orchestrator.db').resolve()}"
        return to_async_url(self.database_url.get_secret_value().strip())


def to_async_url(url: str) -> str:
    """Map ``postgresql://`` / ``postgres://`` / ``sqlite://`` to their asyncio drivers."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        # The value is shown redacted (redact_url masks a libpq ``password=`` keyword and ``user:pass@``
        # wherever they stand): a keyword DSN is the usual thing written here, and it carries the password.
        raise SettingsError(
            f"ORCHESTRATOR_DATABASE_URL={redact_url(url)!r} is not a URL (a libpq keyword string such as "
            "'host=… user=… password=…' is not accepted); "
            "allowed: postgresql://user:pass@host[:port]/db or sqlite:///path"
        )
    mapping = {
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
        "postgresql+asyncpg": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
        "sqlite+aiosqlite": "sqlite+aiosqlite",
    }
    if scheme not in mapping:
        # Only a scheme-shaped prefix is echoed: anything else before "://" may hold part of a secret.
        shown = repr(scheme) if SCHEME.fullmatch(scheme) else "that is not a URL scheme"
        raise SettingsError(f"ORCHESTRATOR_DATABASE_URL has scheme {shown}; allowed: {', '.join(sorted(mapping))}")
    mapped = f"{mapping[scheme]}://{rest}"
    check_database_url(mapped, shown=redact_url(url))
    return mapped


TLS_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Query options a PostgreSQL URL may carry: the TLS mode (app.db.engine.split_tls_mode hands it to asyncpg as
# ``ssl``), the ones ``asyncpg.connect`` takes as keywords, and SQLAlchemy's dialect's own statement cache size.
# Both connections read them alike: the pool through SQLAlchemy's asyncpg dialect, the LISTEN connection
# through the same dialect's connect arguments (``app.db.engine.asyncpg_connect_args``). Anything else would
# be an unknown keyword, a TypeError at every connect.
PG_QUERY_OPTIONS = (
    "sslmode",
    "ssl",
    "user",
    "password",
    "host",
    "port",
    "passfile",
    "target_session_attrs",
    "prepared_statement_cache_size",
)


def check_database_url(url: str, *, shown: str) -> None:
    """Parse the (async) database URL now, so a value the engine cannot use stops start-up by name.

    Before, a bad port or a libpq ``?sslmode=`` passed here and failed at the first connect with a
    traceback (and ``int()``'s message could hold part of a password with an unencoded ``@``).
    ``shown`` is the value as written, redacted.

    Raises:
        SettingsError: naming ORCHESTRATOR_DATABASE_URL, the redacted value and what is allowed.
    """
    name = f"ORCHESTRATOR_DATABASE_URL={shown!r}"
    try:
        parsed = make_url(url)
        port = parsed.port
    except (ValueError, ArgumentError):
        raise SettingsError(
            f"{name} cannot be read as a URL: the port must be a number, and '@', ':' or '/' in the user name "
            "or password must be percent-encoded (%40, %3A, %2F); allowed: postgresql://user:pass@host[:port]/db "
            "or sqlite:///path"
        ) from None
    if port is not None and not 1 <= port <= 65535:
        raise SettingsError(f"{name} has port {port}; allowed: 1-65535")
    if parsed.get_backend_name() != "postgresql":
        return
    unknown = sorted(set(parsed.query) - set(PG_QUERY_OPTIONS))
    if unknown:
        raise SettingsError(
            f"{name} has query option(s) {', '.join(unknown)} that the PostgreSQL driver does not take; "
            f"allowed: {', '.join(PG_QUERY_OPTIONS)}"
        )
    modes = [(option, parsed.query[option]) for option in ("sslmode", "ssl") if option in parsed.query]
    for option, mode in modes:
        if not isinstance(mode, str) or mode not in TLS_MODES:
            raise SettingsError(f"{name} has {option}={mode!r}; allowed: {', '.join(TLS_MODES)}")
    if len(modes) > 1:
        raise SettingsError(f"{name} gives both sslmode and ssl; allowed: one of them")


SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,40}")
# ``password=`` as a URL query option (after ? or &) and as a libpq keyword (at the start or after
# whitespace), its value quoted ('a b', libpq's form) or bare up to the next separator.
KEYWORD_PASSWORD = re.compile(r"(?i)((?:^|[\s?&;])(?:password|passwd|pwd)\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&#;]*)")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs and error messages).

    Every place a driver takes one is covered: ``user:password@host`` (with or without a scheme in front),
    ``?password=…`` / ``&password=…`` (libpq and asyncpg read it from the query string too) and the libpq
    keyword form ``host=… password=…`` that is often written where a URL belongs (DESIGN §7: secrets are
    never logged, even in a value that is refused).
    """
    url = KEYWORD_PASSWORD.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    prefix = f"{scheme}{sep}" if sep else ""
    rest = rest if sep else url
    if "@" not in rest:
        return url
    creds, at, host = rest.rpartition("@")
    if ":" not in creds:
        return url
    user = creds.split(":", 1)[0]
    return f"{prefix}{user}:***{at}{host}"


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment (and overrides), turning errors into one readable message.

    Raises:
        SettingsError: naming each bad variable, its value and what is allowed.
    """
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]  # pydantic-settings accepts field kwargs
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "ORCHESTRATOR_" + "_".join(str(p) for p in err["loc"]).upper()
            # A validator's own ValueError already says what is allowed; its ctx only repeats it.
            allowed = {key: bound for key, bound in err.get("ctx", {}).items() if key != "error"}
            value = err.get("input")
            shown = "***" if "url" in name.lower() or "token" in name.lower() else repr(value)
            problems.append(f"{name}={shown}: {err['msg']}" + (f" (allowed: {allowed})" if allowed else ""))
        raise SettingsError("; ".join(problems)) from None
    settings.resolved_database_url()  # validates the URL's scheme early
    return settings
