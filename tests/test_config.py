from pathlib import Path

import pytest

from jobq.config import Settings
from jobq.errors import ConfigError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.schema == "jobq"
    assert s.lease_seconds == 30
    assert s.retention_seconds == 7 * 86400
    assert s.home == Path(".jobq")


@pytest.mark.parametrize(
    ("raw", "seconds"), [("7d", 604800), ("12h", 43200), ("30m", 1800), ("45s", 45), ("90", 90)]
)
def test_retention_units(raw: str, seconds: float) -> None:
    assert Settings.from_env({"JOBQ_RETENTION": raw}).retention_seconds == seconds


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"JOBQ_LEASE_SECONDS": "abc"}, "JOBQ_LEASE_SECONDS"),
        ({"JOBQ_LEASE_SECONDS": "-1"}, "JOBQ_LEASE_SECONDS"),
        ({"JOBQ_RETENTION": "7 weeks"}, "JOBQ_RETENTION"),
        ({"JOBQ_RETRY_BASE_MS": "5000", "JOBQ_RETRY_CAP_MS": "10"}, "JOBQ_RETRY_CAP_MS"),
        ({"JOBQ_SCHEMA": "Robert'); DROP"}, "JOBQ_SCHEMA"),
        ({"JOBQ_API_TOKENS": "not json"}, "JOBQ_API_TOKENS"),
        ({"JOBQ_API_TOKENS": '[{"token": "x", "scopes": ["root"]}]'}, "JOBQ_API_TOKENS"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        Settings.from_env(env)


def test_tokens_never_appear_in_errors_or_repr() -> None:
    s = Settings.from_env({"JOBQ_API_TOKENS": '[{"token": "s3cret", "scopes": ["read"]}]'})
    assert "s3cret" not in repr(s)
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"JOBQ_API_TOKENS": '[{"token": "s3cret", "scopes": "bad"}]'})
    assert "s3cret" not in str(info.value)


def test_overrides_win_over_the_environment() -> None:
    s = Settings.from_env({"JOBQ_LEASE_SECONDS": "10"}, lease_seconds=5)
    assert s.lease_seconds == 5
