"""Settings: the URL forms users write, bad values that stop start-up by name, redaction, loopback binds."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import __main__ as cli
from app.settings import Settings, SettingsError, load_settings, redact_url, to_async_url


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets are seen (the test run itself exports ORCHESTRATOR_TEST_*)."""
    import os

    for name in list(os.environ):
        if name.startswith(("ORCHESTRATOR_", "OTEL_")):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("plain", "mapped"),
    [
        ("postgresql://user:pw@db.example:5432/orch", "postgresql+asyncpg://user:pw@db.example:5432/orch"),
        ("postgres://user@db/orch", "postgresql+asyncpg://user@db/orch"),
        ("postgresql+asyncpg://user@db/orch", "postgresql+asyncpg://user@db/orch"),
        ("sqlite:////var/lib/orch/orchestrator.db", "sqlite+aiosqlite:////var/lib/orch/orchestrator.db"),
        ("sqlite:///relative/orch.db", "sqlite+aiosqlite:///relative/orch.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_plain_url_forms_map_to_the_async_drivers(plain: str, mapped: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert to_async_url(plain) == mapped
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", plain)
    assert load_settings().resolved_database_url() == mapped


def test_no_database_url_means_a_sqlite_file_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path))
    assert load_settings().resolved_database_url() == f"sqlite+aiosqlite:///{tmp_path.resolve()}/orchestrator.db"
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", "   ")
    assert load_settings().resolved_database_url() == f"sqlite+aiosqlite:///{tmp_path.resolve()}/orchestrator.db"


def test_database_url_is_a_secret_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", "postgresql://user:hunter2@db/orch")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("variable", "value", "mentions"),
    [
        ("ORCHESTRATOR_PORT", "eighty", ["'eighty'", "integer"]),
        ("ORCHESTRATOR_PORT", "70000", ["'70000'", "65535"]),
        ("ORCHESTRATOR_LOG_LEVEL", "LOUD", ["'LOUD'", "DEBUG", "CRITICAL"]),
        ("ORCHESTRATOR_LOG_FORMAT", "xml", ["'xml'", "json", "console"]),
        ("ORCHESTRATOR_LEASE_SECONDS", "5", ["'5'", "30"]),
        ("ORCHESTRATOR_MAX_ATTEMPTS", "0", ["'0'", "1"]),
        ("ORCHESTRATOR_DB_POOL_SIZE", "many", ["'many'"]),
        ("ORCHESTRATOR_AUTO_MIGRATE", "perhaps", ["'perhaps'", "bool"]),
        ("ORCHESTRATOR_DRAIN_TIMEOUT_SECONDS", "-1", ["'-1'", "0"]),
        ("ORCHESTRATOR_RATE_LIMIT_PER_MINUTE", "0", ["'0'", "greater than or equal to 1"]),
        ("ORCHESTRATOR_RATE_LIMIT_PER_MINUTE", "fast", ["'fast'", "integer"]),
        ("ORCHESTRATOR_RATE_LIMIT_BURST", "0", ["'0'", "greater than or equal to 1"]),
        ("ORCHESTRATOR_MAX_IN_FLIGHT_PER_ACTOR", "-3", ["'-3'", "greater than or equal to 1"]),
        ("ORCHESTRATOR_MAX_SESSIONS_PER_PRINCIPAL", "20000", ["'20000'", "less than or equal to 10000"]),
        ("ORCHESTRATOR_SESSION_IDLE_SECONDS", "0", ["'0'", "greater than 0"]),
        ("ORCHESTRATOR_REQUEST_BODY_TIMEOUT_SECONDS", "never", ["'never'", "number"]),
        ("ORCHESTRATOR_DB_TIMEOUT_SECONDS", "0", ["'0'", "greater than 0"]),
        ("ORCHESTRATOR_DB_TIMEOUT_SECONDS", "601", ["'601'", "less than or equal to 600"]),
    ],
)
def test_bad_value_stops_with_a_message_naming_the_variable(
    variable: str, value: str, mentions: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{variable}=")
    for text in mentions:
        assert text in message


def test_every_bad_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_PORT", "x")
    monkeypatch.setenv("ORCHESTRATOR_MAX_ATTEMPTS", "y")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "ORCHESTRATOR_PORT=" in str(caught.value) and "ORCHESTRATOR_MAX_ATTEMPTS=" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "mentions"),
    [
        ("mysql://root:hunter2@db/orch", ["'mysql'", "postgresql", "sqlite"]),
        ("just-a-path.db", ["not a URL", "postgresql://", "sqlite:///"]),
    ],
)
def test_unusable_database_url_names_the_variable_without_leaking_the_password(
    url: str, mentions: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", url)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("ORCHESTRATOR_DATABASE_URL")
    assert "hunter2" not in message
    for text in mentions:
        assert text in message


def test_cli_exits_2_naming_the_bad_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_LEASE_SECONDS", "soon")
    assert cli.main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "invalid settings" in err and "ORCHESTRATOR_LEASE_SECONDS='soon'" in err


@pytest.mark.parametrize(
    ("url", "mentions"),
    [
        ("host=db user=app password=s3cretPW dbname=orch", ["not a URL", "password=***", "postgresql://"]),
        ("password=s3cretPW host=db", ["not a URL", "password=***"]),
        ("host=db password='s3cretPW with space' dbname=orch", ["not a URL", "password=***"]),
        ("host=db\tpassword=s3cretPW@x:y dbname=orch", ["not a URL", "password=***"]),
        ("app:s3cretPW@db/orch", ["not a URL", "app:***@db/orch"]),
        ("app:s3cretPW@x:y@db:5432/orch", ["not a URL", "app:***@db:5432/orch"]),
        ("db/orch?user=app&password=s3cretPW", ["not a URL", "password=***"]),
        ("app:s3cretPW@db://orch", ["not a URL scheme", "postgresql"]),
    ],
)
def test_a_refused_database_value_never_shows_its_password(
    url: str, mentions: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DESIGN §7: a DSN's password is never printed, also when the value is refused (a libpq keyword
    string written where a URL belongs is the usual case); the message still names the variable."""
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", url)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("ORCHESTRATOR_DATABASE_URL")
    assert "s3cretPW" not in message
    for text in mentions:
        assert text in message
    assert cli.main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "ORCHESTRATOR_DATABASE_URL" in err and "s3cretPW" not in err


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://user:hunter2@db:5432/orch", "postgresql://user:***@db:5432/orch"),
        ("postgresql+asyncpg://user:hunter2@db/orch", "postgresql+asyncpg://user:***@db/orch"),
        ("postgresql://user:p@ss:w@rd@db/orch", "postgresql://user:***@db/orch"),
        ("postgresql://user@db/orch", "postgresql://user@db/orch"),
        ("postgresql://db/orch", "postgresql://db/orch"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
        ("not a url", "not a url"),
        (
            "postgresql://db/orch?user=u&password=hunter2&sslmode=require",
            "postgresql://db/orch?user=u&password=***&sslmode=require",
        ),
        ("postgresql://u:pw@db/orch?PASSWORD=hunter2", "postgresql://u:***@db/orch?PASSWORD=***"),
        ("postgresql://u:p%40ss%3Aw@db/orch", "postgresql://u:***@db/orch"),
        ("host=db user=app password=hunter2 dbname=orch", "host=db user=app password=*** dbname=orch"),
        ("password=hunter2 host=db", "password=*** host=db"),
        ("host=db password='hun ter2' dbname=orch", "host=db password=*** dbname=orch"),
        ("u:hunter2@db/orch", "u:***@db/orch"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),  # noqa: S104  # a bind address under test, not a bind
        ("::", False),
        ("10.0.0.5", False),
        ("192.168.1.20", False),
        ("orchestrator.internal", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert Settings(host=host).is_loopback_bind is loopback


def test_auth_is_configured_by_a_tokens_file_or_a_jwks_url(tmp_path: Path) -> None:
    assert Settings().auth_configured is False
    assert Settings(auth_tokens_file=tmp_path / "tokens").auth_configured is True
    assert Settings(jwks_url="https://idp.example/jwks").auth_configured is True


def test_fair_share_session_and_time_bound_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.rate_limit_per_minute, settings.rate_limit_burst, settings.max_in_flight_per_actor) == (
        1200,
        100,
        16,
    )
    assert (settings.max_sessions_per_principal, settings.session_idle_seconds) == (100, 600.0)
    assert (settings.request_body_timeout_seconds, settings.db_timeout_seconds) == (30.0, 10.0)
    monkeypatch.setenv("ORCHESTRATOR_RATE_LIMIT_PER_MINUTE", "600")
    monkeypatch.setenv("ORCHESTRATOR_DB_TIMEOUT_SECONDS", "2.5")
    assert (load_settings().rate_limit_per_minute, load_settings().db_timeout_seconds) == (600, 2.5)


@pytest.mark.parametrize(
    ("url", "mentions"),
    [
        ("postgresql://app:s3cretPW@db:notaport/orch", ["port must be a number", "postgresql://user:pass@host"]),
        ("postgresql://app:s3cretPW@db:99999/orch", ["port 99999", "1-65535"]),
        ("postgresql://app:s3cret@PW:x@db/orch", ["percent-encoded", "%40"]),
        ("postgresql://app:s3cretPW@db/orch?sslmode=sometimes", ["sslmode='sometimes'", "verify-full"]),
        ("postgresql://app:s3cretPW@db/orch?connect_timeout=10", ["connect_timeout", "allowed: sslmode"]),
        ("postgresql://app:s3cretPW@db/orch?ssl=require&sslmode=require", ["both sslmode and ssl"]),
    ],
)
def test_a_database_url_the_driver_cannot_use_stops_start_up_by_name(
    url: str, mentions: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DESIGN §10: these passed validation and failed at the first connect with a traceback (TypeError for
    an unknown query option, ValueError from int() for the port: exit status 1, not 2)."""
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", url)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("ORCHESTRATOR_DATABASE_URL=")
    assert "s3cret" not in message
    for text in mentions:
        assert text in message
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "invalid settings: ORCHESTRATOR_DATABASE_URL" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pw@db/orch?sslmode=require",
        "postgresql://app:pw@db:6432/orch?ssl=verify-full",
        "postgresql://app:p%40ss%3Aw@db/orch?sslmode=verify-ca",
        "postgresql://db/orch?user=app&password=pw&sslmode=disable",
    ],
)
def test_database_urls_with_a_tls_mode_are_accepted(url: str) -> None:
    assert load_settings(database_url=url).resolved_database_url().startswith("postgresql+asyncpg://")


@pytest.mark.parametrize(
    ("hosts", "bad"),
    [
        ("https://orch.example.com,http://127.0.0.1:8793", "'https://orch.example.com', 'http://127.0.0.1:8793'"),
        ("orch.example.com,orch.example.com/mcp", "'orch.example.com/mcp'"),
        ('["orch.example.com", "http://x"]', "'http://x'"),
    ],
)
def test_allowed_hosts_that_are_urls_stop_start_up(hosts: str, bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL never matches a Host header: the service used to start, report ready and answer every
    POST /mcp with 421."""
    monkeypatch.setenv("ORCHESTRATOR_ALLOWED_HOSTS", hosts)
    monkeypatch.setenv("ORCHESTRATOR_HOST", "0.0.0.0")  # noqa: S104  # a bind address under test, not a bind
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("ORCHESTRATOR_ALLOWED_HOSTS=")
    assert f"not host names: {bad}" in message
    assert "give bare host names (host or host:port" in message


def test_bare_allowed_hosts_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_ALLOWED_HOSTS", "orch.example.com, 127.0.0.1:8793,[::1]:8000")
    assert load_settings().allowed_hosts == ["orch.example.com", "127.0.0.1:8793", "[::1]:8000"]
