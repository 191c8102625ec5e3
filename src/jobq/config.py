"""Settings from the environment (`DATABASE_URL`, `JOBQ_*`), validated once at start.

Each setting has a default constant beside it. `Settings.from_env()` reads the
environment, applies overrides (command-line flags win), and raises one
`ConfigError` naming the variable for any bad value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import platformdirs

from jobq.errors import ConfigError

DEFAULT_SCHEMA = "jobq"
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_RESULT_BYTES = 1024 * 1024
# How long `Prefer: wait=N` may hold an HTTP request (an HTTP client or proxy
# gives up on a silent request after about a minute).
DEFAULT_MAX_WAIT_SECONDS = 60.0
# jsonb holds at most 255 MiB; a wait beyond an hour is a job to poll, not a request.
MAX_RESULT_BYTES_LIMIT = 255 * 1024 * 1024
MAX_WAIT_SECONDS_LIMIT = 3600.0
DEFAULT_MAX_METADATA_BYTES = 64 * 1024
DEFAULT_RETRY_BASE_MS = 1_000
DEFAULT_RETRY_CAP_MS = 3_600_000
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_POLL_INTERVAL_MS = 1_000
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_CANCEL_GRACE_SECONDS = 30.0
DEFAULT_SHUTDOWN_GRACE_SECONDS = 30.0
DEFAULT_RETENTION_SECONDS = 7 * 86_400
# The charts' per-minute rollup: its longest window is a day.
DEFAULT_STATS_RETENTION_SECONDS = 3 * 86_400
MIN_STATS_RETENTION_SECONDS = 86_400
# JOBQ_HOME's default, one per OS user (see default_home); how the docs show it.
DEFAULT_HOME_SHOWN = "the user's data directory (`~/.local/share/jobq` on Linux)"
DEFAULT_STATEMENT_CACHE = 100
DEFAULT_LOG_LEVEL = "info"
# A job's success logs at debug (one line a job is noise at thousands a second);
# failures and retries log at info and above.
LOG_LEVELS = ("debug", "info", "warning", "error")
# JOBQ_TRACING: "off" makes no spans and imports no OpenTelemetry; "otel" makes
# them through the OpenTelemetry API (the extra jobq[otel]). Not "on when
# importable": FastAPI itself depends on opentelemetry-api, so it is always there.
DEFAULT_TRACING = "off"
TRACING_MODES = ("off", "otel")
# JOBQ_GROUP_COMMIT: concurrent single enqueues on the pool share one insert and
# one commit (jobq.group_commit); every caller still gets its own answer.
DEFAULT_GROUP_COMMIT = "on"
GROUP_COMMIT_MODES = ("on", "off")

# Used with fullmatch: with match, `$` also matches before a final newline.
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_HOST_RE = re.compile(r"[a-z0-9_.-]{1,253}|[0-9a-f:.]{2,45}")
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|[smhd])?\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_UNITS = "7d, 12h, 30m, 45s or 500ms"
VALID_SCOPES = frozenset({"read", "write", "admin"})
MIN_TOKEN_LENGTH = 32
# In the example Secret; refused in any case and spelling (CHANGE-ME, change_me).
TOKEN_PLACEHOLDER = "changeme"
TOKEN_HOWTO = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# Visible ASCII: what an Authorization header carries unchanged (no spaces).
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class ApiToken:
    token: str = field(repr=False)
    scopes: frozenset[str]


def _setting(
    default: Any,
    doc: str,
    *,
    no_flag: str | None = None,
    in_repr: bool = True,
    default_factory: Any = None,
    default_shown: str | None = None,
) -> Any:
    """A Settings field with its documentation (docs/CONFIGURATION.md and the CLI's
    flag help are made from it) and, for a setting that is not a CLI flag, why.
    A default that depends on the machine (`default_factory`) is shown as
    `default_shown` in the docs."""
    metadata = {"doc": doc, "flag": no_flag is None, "no_flag": no_flag, "shown": default_shown}
    if default_factory is not None:
        return field(default_factory=default_factory, repr=in_repr, metadata=metadata)
    return field(default=default, repr=in_repr, metadata=metadata)


def default_home() -> Path:
    """JOBQ_HOME's default: the user's data directory, so every jobq process of one OS
    user shares one embedded database, whichever folder it starts in."""
    return Path(platformdirs.user_data_dir("jobq", appauthor=False))


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting; `dataclasses.fields(Settings)` is the catalogue (each field's
    metadata has its `doc` and whether it is also a CLI `flag`)."""

    database_url: str | None = _setting(
        None, "PostgreSQL URL; without it, the embedded PostgreSQL in JOBQ_HOME."
    )
    listen_database_url: str | None = _setting(
        None, "A direct URL for LISTEN when DATABASE_URL goes through a transaction pooler."
    )
    schema: str = _setting(DEFAULT_SCHEMA, "PostgreSQL schema that holds jobq's tables.")
    app: str | None = _setting(
        None,
        "module:attribute of your jobq.App for serve, worker and enqueue (--app wins); "
        "unset: the demo app, jobq.demo:app.",
        no_flag="each command that loads an app takes --app (serve, worker, enqueue)",
    )
    max_payload_bytes: int = _setting(
        DEFAULT_MAX_PAYLOAD_BYTES, "Largest payload accepted, serialised (413 beyond)."
    )
    max_request_bytes: int = _setting(
        DEFAULT_MAX_REQUEST_BYTES, "Largest HTTP request body (413 before parsing)."
    )
    max_result_bytes: int = _setting(
        DEFAULT_MAX_RESULT_BYTES,
        "Largest result a handler may return, serialised; a larger one fails the attempt.",
    )
    max_wait_seconds: float = _setting(
        DEFAULT_MAX_WAIT_SECONDS,
        "Longest an HTTP request's `Prefer: wait=N` is held (a larger N is capped to it).",
    )
    retry_base_ms: int = _setting(DEFAULT_RETRY_BASE_MS, "Retry delay base (decorrelated jitter).")
    retry_cap_ms: int = _setting(DEFAULT_RETRY_CAP_MS, "Retry delay cap.")
    poll_interval_ms: int = _setting(
        DEFAULT_POLL_INTERVAL_MS, "Polling fallback of a worker when no NOTIFY arrives."
    )
    lease_seconds: float = _setting(
        DEFAULT_LEASE_SECONDS, "Lease of a running job, renewed by heartbeat."
    )
    cancel_grace_seconds: float = _setting(
        DEFAULT_CANCEL_GRACE_SECONDS, "Time a handler gets to honour a cancel request."
    )
    shutdown_grace_seconds: float = _setting(
        DEFAULT_SHUTDOWN_GRACE_SECONDS, "Time running jobs get to finish on SIGTERM."
    )
    retention_seconds: float = _setting(
        DEFAULT_RETENTION_SECONDS,
        "Keep finished jobs (and a workflow once all its jobs are gone) this long, with a "
        f"unit: {DURATION_UNITS} (a bare number is refused).",
        default_shown="`7d`",
    )
    stats_retention_seconds: float = _setting(
        DEFAULT_STATS_RETENTION_SECONDS,
        "Keep the charts' per-minute rollup (GET /v1/stats/throughput) this long, with a "
        "unit, at least 1d (the longest chart).",
        default_shown="`3d`",
    )
    home: Path = _setting(
        None,
        "Folder of the embedded PostgreSQL, shared by every jobq process that uses it.",
        default_factory=default_home,
        default_shown=DEFAULT_HOME_SHOWN,
    )
    statement_cache: int = _setting(
        DEFAULT_STATEMENT_CACHE, "asyncpg's statement cache size; 0 for PgBouncer < 1.21."
    )
    log_level: str = _setting(
        DEFAULT_LOG_LEVEL,
        "Least level logged by serve and worker: debug (also each job's success), info, "
        "warning or error.",
    )
    tracing: str = _setting(
        DEFAULT_TRACING,
        "OpenTelemetry spans: otel (a producer span at enqueue, a consumer span per attempt; "
        "needs jobq[otel] and a tracer provider set by the program or opentelemetry-instrument) "
        "or off (imports no OpenTelemetry).",
    )
    group_commit: str = _setting(
        DEFAULT_GROUP_COMMIT,
        "on: concurrent enqueues of one job each (library without connection=, POST "
        "/v1/jobs) are gathered into one insert and one commit while the previous one runs, "
        "each caller getting its own job, idempotency answer and error; off: one statement "
        "each.",
    )
    api_tokens: tuple[ApiToken, ...] = _setting(
        (),
        'Bearer tokens of the HTTP API, a JSON list: [{"token": "...", "scopes": ["read", '
        '"write", "admin"]}].',
        no_flag="a secret, which a flag would show in `ps` and in the shell's history",
        in_repr=False,
    )
    allowed_hosts: tuple[str, ...] = _setting(
        (),
        "Host names an API without tokens also answers to, besides loopback names "
        "(comma-separated; * for any): the DNS rebinding guard.",
        no_flag="the API's DNS-rebinding guard, which only `jobq serve` reads",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `env` (default os.environ); non-None overrides win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = env_name(f.name)
            if f.name in overrides and overrides[f.name] is not None:
                raw: Any = overrides[f.name]
            elif var in env and env[var] != "":
                raw = env[var]
            else:
                continue
            values[f.name] = _PARSERS.get(f.name, _parse_str)(var, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not _SCHEMA_RE.fullmatch(self.schema):
            raise ConfigError(f"JOBQ_SCHEMA: {self.schema!r} is not a plain lower-case identifier")
        if self.retry_cap_ms < self.retry_base_ms:
            raise ConfigError(
                f"JOBQ_RETRY_CAP_MS: cap ({self.retry_cap_ms}) must be >= "
                f"JOBQ_RETRY_BASE_MS ({self.retry_base_ms})"
            )
        if self.max_result_bytes > MAX_RESULT_BYTES_LIMIT:
            raise ConfigError(
                f"JOBQ_MAX_RESULT_BYTES: must be <= {MAX_RESULT_BYTES_LIMIT} (jsonb's limit), "
                f"got {self.max_result_bytes}"
            )
        if not 0 < self.max_wait_seconds <= MAX_WAIT_SECONDS_LIMIT:
            raise ConfigError(
                f"JOBQ_MAX_WAIT_SECONDS: must be > 0 and <= {MAX_WAIT_SECONDS_LIMIT:g}, "
                f"got {self.max_wait_seconds:g}"
            )
        if self.stats_retention_seconds < MIN_STATS_RETENTION_SECONDS:
            raise ConfigError(
                f"{env_name('stats_retention_seconds')}: must be at least 1d (the 24 h chart), "
                f"got {format_duration(self.stats_retention_seconds)}"
            )
        if self.max_request_bytes < self.max_payload_bytes:
            raise ConfigError("JOBQ_MAX_REQUEST_BYTES: must be >= JOBQ_MAX_PAYLOAD_BYTES")
        parse_tracing("JOBQ_TRACING", self.tracing)
        parse_group_commit(env_name("group_commit"), self.group_commit)
        # Tokens given in code (Settings(api_tokens=...)) meet the same policy.
        seen: set[str] = set()
        for i, token in enumerate(self.api_tokens):
            check_api_token(env_name("api_tokens"), i, token.token, sorted(token.scopes), seen)

    def __repr__(self) -> str:
        # The dataclass's repr, with the URLs' passwords hidden (tokens are left out).
        shown = []
        for f in dataclasses.fields(self):
            if not f.repr:
                continue
            value = getattr(self, f.name)
            if f.name in _URL_FIELDS and isinstance(value, str):
                value = redact(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def with_overrides(self, **overrides: Any) -> Settings:
        new = dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})
        new.validate()
        return new


_ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "retention_seconds": "JOBQ_RETENTION",
    "stats_retention_seconds": "JOBQ_STATS_RETENTION",
}


def env_name(field_name: str) -> str:
    """The environment variable of a setting (SPEC §9)."""
    return _ENV_NAMES.get(field_name, f"JOBQ_{field_name.upper()}")


def flag_name(field_name: str) -> str:
    """The CLI flag of a setting: its variable's kebab-case form (`--lease-seconds`)."""
    return "--" + env_name(field_name).removeprefix("JOBQ_").lower().replace("_", "-")


# Settings a worker process never needs, so never in its environment, even
# when the parent's environment (`base`) holds them.
_NOT_FOR_WORKERS = frozenset({"api_tokens", "allowed_hosts"})
_URL_FIELDS = frozenset({"database_url", "listen_database_url"})
# Durations whose variable names no unit, so they are written with one (parse_duration).
_DURATION_FIELDS = frozenset({"retention_seconds", "stats_retention_seconds"})


def worker_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """`base` with every setting spelled out as its variable, so a worker process
    started with it builds the same Settings; JOBQ_API_TOKENS removed."""
    env = dict(base)
    for f in dataclasses.fields(settings):
        if f.name in _NOT_FOR_WORKERS:
            env.pop(env_name(f.name), None)
            continue
        value = getattr(settings, f.name)
        if value is None:
            env.pop(env_name(f.name), None)
        elif f.name in _DURATION_FIELDS:
            env[env_name(f.name)] = format_duration(value)
        else:
            env[env_name(f.name)] = str(value)
    return env


# Query parameters that carry a password (libpq's and asyncpg's names).
_SECRET_PARAMS = frozenset({"password", "sslpassword"})
# libpq's key=value form: password=secret or password='a secret'.
_KEYWORD_PASSWORD_RE = re.compile(r"\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.I)


def redact(url: str) -> str:
    """`url` without its passwords (in the userinfo and in `?password=`), for
    messages, logs and repr. passfile= is a path, not a secret, and stays."""
    if "://" not in url:
        return _KEYWORD_PASSWORD_RE.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [ of an IPv6 host: show none of it
        return "<a URL that does not parse, hidden>"
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hostinfo}"
    query = "&".join(_redact_param(p) for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _redact_param(param: str) -> str:
    key, eq, _ = param.partition("=")
    if eq and unquote_plus(key).strip().lower() in _SECRET_PARAMS:
        return f"{key}=***"
    return param


def _parse_str(var: str, raw: Any) -> str:
    return str(raw)


def _positive_int(var: str, raw: Any, minimum: int = 1) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{var}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{var}: must be >= {minimum}, got {value}")
    return value


def _positive_float(var: str, raw: Any) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{var}: expected a number of seconds, got {raw!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{var}: must be a positive number, got {raw!r}")
    return value


def parse_duration(var: str, raw: Any) -> float:
    """`7d`, `12h`, `30m`, `45s` or `500ms`, in seconds. A string needs its unit: the
    variable's name carries none, so `7` could mean seven seconds or seven days.
    A number given in code (a `retention_seconds=` argument) is seconds."""
    if isinstance(raw, int | float):
        seconds = float(raw)
    else:
        match = _DURATION_RE.fullmatch(str(raw))
        if not match:
            raise ConfigError(
                f"{var}: expected a number with a unit ({DURATION_UNITS}), got {raw!r}"
            )
        if match.group(2) is None:
            n = match.group(1)
            raise ConfigError(
                f"{var}: {n} has no unit; write {n}d, {n}h, {n}m, {n}s or {n}ms "
                "(a bare number is not taken as seconds)"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{var}: must be positive, got {raw!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """`seconds` as parse_duration reads it back: `604800s`, `1500ms`."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds * 1000:f}".rstrip("0").rstrip(".") + "ms"


def parse_api_tokens(var: str, raw: Any) -> tuple[ApiToken, ...]:
    # Never echo the raw value: it holds secrets.
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{var}: not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(items, list):
        raise ConfigError(f'{var}: expected a JSON list like [{{"token": "...", "scopes": [...]}}]')
    tokens = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(
                f'{var}: item {i} must be an object {{"token": ..., "scopes": [...]}}'
            )
        scopes = item.get("scopes", [])
        check_api_token(var, i, item.get("token"), scopes, seen)
        if "scopes" not in item:
            # A misspelt key would otherwise give a token that can do nothing.
            raise ConfigError(f"{var}: item {i} needs 'scopes' (a list of read, write, admin)")
        tokens.append(ApiToken(token=item["token"], scopes=frozenset(scopes)))
    return tuple(tokens)


def parse_host_list(var: str, raw: Any) -> tuple[str, ...]:
    """`a.example, b.example` or `*`: lower-case host names, no ports."""
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    hosts = tuple(str(h).strip().lower().rstrip(".") for h in items if str(h).strip())
    for host in hosts:
        if host != "*" and not _HOST_RE.fullmatch(host):
            raise ConfigError(f"{var}: {host!r} is not a host name or IP address (no port)")
    return hosts


def check_api_token(var: str, i: int, token: Any, scopes: Any, seen: set[str]) -> None:
    """The token policy: a string of at least MIN_TOKEN_LENGTH visible ASCII
    characters, not the placeholder, not repeated, with scopes from VALID_SCOPES.
    The messages never show the token."""
    if not isinstance(token, str) or not token:
        raise ConfigError(f"{var}: item {i} needs a non-empty string 'token'")
    if TOKEN_PLACEHOLDER in token.lower().replace("-", "").replace("_", ""):
        raise ConfigError(f"{var}: item {i} is the CHANGE-ME placeholder; {TOKEN_HOWTO}")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{var}: item {i} is shorter than {MIN_TOKEN_LENGTH} characters; {TOKEN_HOWTO}"
        )
    if not _TOKEN_RE.fullmatch(token):
        raise ConfigError(
            f"{var}: item {i} has a character other than visible ASCII (a space?); {TOKEN_HOWTO}"
        )
    if token in seen:
        raise ConfigError(f"{var}: item {i} repeats the token of an earlier item")
    seen.add(token)
    if not isinstance(scopes, list) or not all(
        isinstance(scope, str) and scope in VALID_SCOPES for scope in scopes
    ):
        raise ConfigError(f"{var}: item {i} scopes must be a list of read, write, admin")


def _parse_app_ref(var: str, raw: Any) -> str:
    ref = str(raw).strip()
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise ConfigError(f"{var}: expected module:attribute (e.g. myapp.tasks:app), got {raw!r}")
    return ref


def _parse_statement_cache(var: str, raw: Any) -> int:
    return _positive_int(var, raw, minimum=0)


def parse_log_level(var: str, raw: Any) -> str:
    level = str(raw).strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{var}: expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def parse_tracing(var: str, raw: Any) -> str:
    mode = str(raw).strip().lower()
    if mode not in TRACING_MODES:
        raise ConfigError(f"{var}: expected one of {', '.join(TRACING_MODES)}, got {raw!r}")
    return mode


def parse_group_commit(var: str, raw: Any) -> str:
    mode = str(raw).strip().lower()
    if mode not in GROUP_COMMIT_MODES:
        raise ConfigError(f"{var}: expected one of {', '.join(GROUP_COMMIT_MODES)}, got {raw!r}")
    return mode


def _parse_path(var: str, raw: Any) -> Path:
    return Path(str(raw)).expanduser()


_PARSERS: dict[str, Any] = {
    "max_payload_bytes": _positive_int,
    "max_request_bytes": _positive_int,
    "max_result_bytes": _positive_int,
    "max_wait_seconds": _positive_float,
    "retry_base_ms": _positive_int,
    "retry_cap_ms": _positive_int,
    "poll_interval_ms": _positive_int,
    "lease_seconds": _positive_float,
    "cancel_grace_seconds": _positive_float,
    "shutdown_grace_seconds": _positive_float,
    "retention_seconds": parse_duration,
    "stats_retention_seconds": parse_duration,
    "statement_cache": _parse_statement_cache,
    "home": _parse_path,
    "log_level": parse_log_level,
    "tracing": parse_tracing,
    "group_commit": parse_group_commit,
    "app": _parse_app_ref,
    "api_tokens": parse_api_tokens,
    "allowed_hosts": parse_host_list,
}
