import json
from pathlib import Path

import pytest

from jobq.config import Settings
from jobq.errors import ConfigError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.schema == "jobq"
    assert s.lease_seconds == 30
    assert s.retention_seconds == 7 * 86400


# --- JOBQ_HOME: one embedded database per OS user (issue 14, item 2) ---------------


def test_the_default_home_is_the_users_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from jobq.config import default_home

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_home() == tmp_path / "data" / "jobq"
    assert Settings().home == Settings.from_env({}).home == tmp_path / "data" / "jobq"
    # Not relative to the folder a process starts in.
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).home.is_absolute()
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert Settings().home == tmp_path / "user" / ".local" / "share" / "jobq"


def test_jobq_home_overrides_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert Settings.from_env({"JOBQ_HOME": str(tmp_path / "mine")}).home == tmp_path / "mine"
    assert Settings.from_env({"JOBQ_HOME": "~/q"}, home=tmp_path / "flag").home == tmp_path / "flag"


# --- Units (issue 14, item 5) -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("7d", 604800), ("12h", 43200), ("30m", 1800), ("45s", 45), ("500ms", 0.5), ("1.5h", 5400)],
)
def test_retention_units(raw: str, seconds: float) -> None:
    assert Settings.from_env({"JOBQ_RETENTION": raw}).retention_seconds == seconds


@pytest.mark.parametrize("raw", ["7", "90", " 7 ", "0.5"])
def test_a_bare_retention_is_refused_with_one_line_that_says_why(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"JOBQ_RETENTION": raw})
    message = str(info.value)
    assert message.startswith("JOBQ_RETENTION: ") and "\n" not in message
    assert "no unit" in message and f"{raw.strip()}d" in message


def test_the_charts_retention_has_a_unit_and_covers_the_day_chart() -> None:
    assert Settings.from_env({}).stats_retention_seconds == 3 * 86400
    assert Settings.from_env({"JOBQ_STATS_RETENTION": "36h"}).stats_retention_seconds == 129600
    with pytest.raises(ConfigError, match="no unit"):
        Settings.from_env({"JOBQ_STATS_RETENTION": "3"})
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"JOBQ_STATS_RETENTION": "12h"})
    assert str(info.value).startswith("JOBQ_STATS_RETENTION: must be at least 1d")


def test_retention_given_in_code_is_seconds_as_its_field_name_says() -> None:
    assert Settings.from_env({}, retention_seconds=90).retention_seconds == 90
    assert Settings(retention_seconds=90).retention_seconds == 90


@pytest.mark.parametrize(
    ("var", "raw", "value"),
    [
        ("JOBQ_LEASE_SECONDS", "7", 7.0),
        ("JOBQ_CANCEL_GRACE_SECONDS", "7", 7.0),
        ("JOBQ_SHUTDOWN_GRACE_SECONDS", "7", 7.0),
        ("JOBQ_RETRY_BASE_MS", "7", 7),
        ("JOBQ_POLL_INTERVAL_MS", "7", 7),
        ("JOBQ_MAX_PAYLOAD_BYTES", "7", 7),
    ],
)
def test_a_setting_whose_name_carries_its_unit_takes_a_bare_number(
    var: str, raw: str, value: float
) -> None:
    from jobq.config import env_name

    settings = Settings.from_env({var: raw})
    (name,) = [f for f in Settings.__dataclass_fields__ if env_name(f) == var]
    assert getattr(settings, name) == value


def test_every_duration_or_size_setting_names_its_unit_or_takes_one() -> None:
    """The trap of item 5, for every setting: a number whose variable names no unit."""
    import dataclasses

    from jobq.config import env_name

    units = ("_SECONDS", "_MS", "_BYTES")
    for f in dataclasses.fields(Settings):
        if f.type not in ("int", "float") or f.name == "statement_cache":  # a count
            continue
        if not env_name(f.name).endswith(units):
            with pytest.raises(ConfigError, match="no unit"):
                Settings.from_env({env_name(f.name): "7"})


@pytest.mark.parametrize("seconds", [604800.0, 45.0, 0.5, 1.25, 5400.0])
def test_worker_environment_writes_durations_with_their_unit(seconds: float) -> None:
    from jobq.config import worker_environment

    env = worker_environment(Settings(retention_seconds=seconds), {})
    assert env["JOBQ_RETENTION"][-1] == "s"
    assert Settings.from_env(env).retention_seconds == seconds


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"JOBQ_LEASE_SECONDS": "abc"}, "JOBQ_LEASE_SECONDS"),
        ({"JOBQ_LEASE_SECONDS": "-1"}, "JOBQ_LEASE_SECONDS"),
        ({"JOBQ_RETENTION": "7 weeks"}, "JOBQ_RETENTION"),
        ({"JOBQ_RETRY_BASE_MS": "5000", "JOBQ_RETRY_CAP_MS": "10"}, "JOBQ_RETRY_CAP_MS"),
        ({"JOBQ_SCHEMA": "Robert'); DROP"}, "JOBQ_SCHEMA"),
        # re.match with `$` let a trailing newline through (finding 14).
        ({"JOBQ_SCHEMA": "jobq\n"}, "JOBQ_SCHEMA"),
        ({"JOBQ_SCHEMA": "jobq\ndrop"}, "JOBQ_SCHEMA"),
        ({"JOBQ_API_TOKENS": "not json"}, "JOBQ_API_TOKENS"),
        ({"JOBQ_MAX_RESULT_BYTES": "0"}, "JOBQ_MAX_RESULT_BYTES"),
        ({"JOBQ_MAX_RESULT_BYTES": "1MiB"}, "JOBQ_MAX_RESULT_BYTES"),
        ({"JOBQ_MAX_RESULT_BYTES": str(300 * 1024 * 1024)}, "JOBQ_MAX_RESULT_BYTES"),
        ({"JOBQ_MAX_WAIT_SECONDS": "0"}, "JOBQ_MAX_WAIT_SECONDS"),
        ({"JOBQ_MAX_WAIT_SECONDS": "7200"}, "JOBQ_MAX_WAIT_SECONDS"),
        ({"JOBQ_MAX_WAIT_SECONDS": "soon"}, "JOBQ_MAX_WAIT_SECONDS"),
        (
            {"JOBQ_API_TOKENS": '[{"token": "' + "x" * 32 + '", "scopes": ["root"]}]'},
            "JOBQ_API_TOKENS",
        ),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        Settings.from_env(env)


SECRET = "s3cret-0123456789abcdef0123456789abcdef"


def test_tokens_never_appear_in_errors_or_repr() -> None:
    s = Settings.from_env({"JOBQ_API_TOKENS": '[{"token": "' + SECRET + '", "scopes": ["read"]}]'})
    assert SECRET not in repr(s)
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"JOBQ_API_TOKENS": '[{"token": "' + SECRET + '", "scopes": "bad"}]'})
    assert "s3cret" not in str(info.value)


# --- Token policy (issue 12, finding 12) -------------------------------------------


def tokens_env(*items: object) -> dict[str, str]:
    return {"JOBQ_API_TOKENS": json.dumps(list(items))}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"token": "a", "scopes": ["read"]}, "shorter than 32 characters"),
        ({"token": "s3cret-" + "x" * 24, "scopes": ["read"]}, "shorter than 32 characters"),
        ({"token": "CHANGE-ME", "scopes": ["read"]}, "placeholder"),
        ({"token": "x" * 40 + "change-me", "scopes": ["read"]}, "placeholder"),
        ({"token": "CHANGE-ME-to-a-token-of-32-characters-or-more"}, "placeholder"),
        ({"token": "x" * 40 + "CHANGE_ME", "scopes": ["read"]}, "placeholder"),
        ({"token": "x" * 40 + "changeme", "scopes": ["read"]}, "placeholder"),
        ({"token": SECRET}, "needs 'scopes'"),
        ({"token": SECRET, "scope": ["read"]}, "needs 'scopes'"),
        ({"token": "s3cret " + "x" * 32}, "visible ASCII"),
        ({"token": "s3cret\n" + "x" * 32}, "visible ASCII"),
        ({"token": "s3cret-é" + "x" * 32}, "visible ASCII"),
        ({"token": "", "scopes": ["read"]}, "non-empty string 'token'"),
        ({"token": 17, "scopes": ["read"]}, "non-empty string 'token'"),
        ({"scopes": ["read"]}, "non-empty string 'token'"),
        ({"token": SECRET, "scopes": [{}]}, "scopes must be a list of read, write, admin"),
        ({"token": SECRET, "scopes": [["read"]]}, "scopes must be a list of read, write, admin"),
        ({"token": SECRET, "scopes": [None]}, "scopes must be a list of read, write, admin"),
        ({"token": SECRET, "scopes": {"read": 1}}, "scopes must be a list of read, write, admin"),
        ({"token": SECRET, "scopes": ["READ"]}, "scopes must be a list of read, write, admin"),
        ("just-a-token-string-of-32-characters", "must be an object"),
    ],
)
def test_token_policy_refuses_with_one_line_naming_the_variable(item: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(tokens_env({"token": "first-" + SECRET, "scopes": ["read"]}, item))
    text = str(info.value)
    assert text.startswith("JOBQ_API_TOKENS: item 1 ") and message in text, text
    assert "\n" not in text
    assert "s3cret" not in text and "x" * 24 not in text
    if "32" in message or "placeholder" in message:
        assert "secrets.token_urlsafe(32)" in text


def test_token_policy_accepts_32_characters_and_refuses_a_repeat() -> None:
    import secrets

    made = secrets.token_urlsafe(32)
    s = Settings.from_env(
        tokens_env({"token": made, "scopes": ["read", "write"]}, {"token": "x" * 32, "scopes": []})
    )
    assert [t.scopes for t in s.api_tokens] == [frozenset({"read", "write"}), frozenset()]
    with pytest.raises(ConfigError, match="JOBQ_API_TOKENS: item 1 repeats"):
        Settings.from_env(
            tokens_env({"token": made, "scopes": []}, {"token": made, "scopes": ["admin"]})
        )


def test_tokens_given_in_code_meet_the_policy_too() -> None:
    from jobq.config import ApiToken

    weak = (ApiToken(token="short", scopes=frozenset({"read"})),)
    with pytest.raises(ConfigError, match="JOBQ_API_TOKENS: item 0 is shorter"):
        Settings(api_tokens=weak).validate()
    with pytest.raises(ConfigError, match="JOBQ_API_TOKENS: item 0 is shorter"):
        Settings().with_overrides(api_tokens=weak)


def test_overrides_win_over_the_environment() -> None:
    s = Settings.from_env({"JOBQ_LEASE_SECONDS": "10"}, lease_seconds=5)
    assert s.lease_seconds == 5


# --- Secrets (issue 12, finding 11) ----------------------------------------------

TOKENS_ENV = '[{"token": "' + "t" * 40 + '", "scopes": ["read"]}]'


def test_worker_environment_drops_api_tokens_from_the_parent_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jobq.bench.workers import bench_worker_environment
    from jobq.config import worker_environment
    from jobq.worker.supervisor import child_environment

    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
            "JOBQ_API_TOKENS": TOKENS_ENV,
        }
    )
    assert settings.api_tokens
    base = {"PATH": "/usr/bin", "JOBQ_API_TOKENS": TOKENS_ENV}
    env = worker_environment(settings, base)
    assert "JOBQ_API_TOKENS" not in env and env["PATH"] == "/usr/bin"
    assert env["DATABASE_URL"] == settings.database_url
    # What `jobq worker --processes N` and `jobq bench` give their processes.
    monkeypatch.setenv("JOBQ_API_TOKENS", TOKENS_ENV)
    assert "JOBQ_API_TOKENS" not in child_environment(settings)
    assert "JOBQ_API_TOKENS" not in bench_worker_environment(settings)


def test_repr_of_settings_hides_database_passwords() -> None:
    s = Settings(
        database_url="postgresql://jobq:hunter2@db:5432/jobq",
        listen_database_url="postgresql://jobq@db/jobq?sslmode=require&password=hunter3",
    )
    for text in (repr(s), str(s)):
        assert "hunter2" not in text and "hunter3" not in text
        assert "postgresql://jobq:***@db:5432/jobq" in text
        assert "sslmode=require&password=***" in text
    assert "schema='jobq'" in repr(s)
    # The values themselves are untouched.
    assert s.database_url == "postgresql://jobq:hunter2@db:5432/jobq"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p%40w@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:p@w@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?password=pw", "postgresql://u@h/db?password=***"),
        (
            "postgresql://u@h/db?sslmode=require&PASSWORD=pw&passfile=/p",
            "postgresql://u@h/db?sslmode=require&PASSWORD=***&passfile=/p",
        ),
        ("postgresql://u@h/db?sslpassword=pw", "postgresql://u@h/db?sslpassword=***"),
        ("postgresql://u:pw@h1:5432,h2:5432/db", "postgresql://u:***@h1:5432,h2:5432/db"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("host=h password='p w' user=u", "host=h password=*** user=u"),
        ("postgresql://u:pw@[::1/db", "<a URL that does not parse, hidden>"),
    ],
)
def test_redact_hides_every_password(url: str, shown: str) -> None:
    from jobq.config import redact

    assert redact(url) == shown


def test_a_schema_override_is_matched_whole() -> None:
    with pytest.raises(ConfigError, match="JOBQ_SCHEMA"):
        Settings().with_overrides(schema="jobq\n")
    assert Settings.from_env({"JOBQ_RETENTION": " 7d "}).retention_seconds == 7 * 86400


def test_log_level_takes_a_level_name_in_any_case() -> None:
    assert Settings.from_env({}).log_level == "info"
    assert Settings.from_env({"JOBQ_LOG_LEVEL": " DEBUG "}).log_level == "debug"
    assert Settings.from_env({"JOBQ_LOG_LEVEL": "info"}, log_level="warning").log_level == "warning"
    with pytest.raises(ConfigError, match="JOBQ_LOG_LEVEL: expected one of debug, info"):
        Settings.from_env({"JOBQ_LOG_LEVEL": "verbose"})
