"""jobq's settings as a Django project gives them: the `JOBQ` setting, read at each use.

    JOBQ = {
        "DATABASE": "default",       # the alias whose connection enqueues (and the worker uses)
        "SCHEMA": "jobq",            # jobq's schema; else JOBQ_SCHEMA, else "jobq"
        "APP": "myproject.jobs:app", # a jobq.App whose kinds the worker also runs (optional)
    }

Every key is optional. The jobq worker connects to DATABASE_URL when it is set,
else to the same database as that alias (`database_url`), so a project names
its database once, in DATABASES.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from jobq.config import Settings
from jobq.errors import ConfigError

DEFAULT_DATABASE_ALIAS = "default"
_KEYS = frozenset({"DATABASE", "SCHEMA", "APP"})


@dataclass(frozen=True, slots=True)
class DjangoConfig:
    database: str
    schema: str | None
    app_ref: str | None


def config() -> DjangoConfig:
    """The `JOBQ` setting, checked: a misspelt key is an error, not a silent default."""
    raw: Any = getattr(django_settings, "JOBQ", {})
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(f"JOBQ must be a dict, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ImproperlyConfigured(f"JOBQ: unknown keys {unknown}; known: {sorted(_KEYS)}")
    alias = raw.get("DATABASE", DEFAULT_DATABASE_ALIAS)
    if alias not in connections.settings:
        raise ImproperlyConfigured(f"JOBQ['DATABASE']: no database {alias!r} in DATABASES")
    return DjangoConfig(alias, raw.get("SCHEMA"), raw.get("APP"))


def jobq_settings(*, database_url: str | None = None) -> Settings:
    """jobq's Settings: the environment's (JOBQ_*), with JOBQ['SCHEMA'] winning."""
    try:
        return Settings.from_env(database_url=database_url, schema=config().schema)
    except ConfigError as exc:
        raise ImproperlyConfigured(f"jobq: {exc}") from None


def database_url(alias: str) -> str:
    """A libpq URL of the database behind a Django alias (for the jobq worker).

    NAME, USER, PASSWORD, HOST and PORT, and the OPTIONS that asyncpg also
    reads (sslmode, passfile, ...); Django's own OPTIONS (pool, isolation
    level, ...) are not. A HOST that is a folder is a Unix socket, as in libpq."""
    db = connections.settings[alias]
    if db.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"jobq: database {alias!r} is {db.get('ENGINE')!r}; jobq needs PostgreSQL"
        )
    user = quote(str(db.get("USER") or ""), safe="")
    password = db.get("PASSWORD") or ""
    auth = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = str(db.get("HOST") or "")
    port = str(db.get("PORT") or "")
    params = {k: str(v) for k, v in (db.get("OPTIONS") or {}).items() if k in _LIBPQ_OPTIONS}
    if host.startswith("/"):
        # A socket folder and its port (the socket's name) go in the query, as
        # `jobq db url` prints them: "user@:5432" has no host for a URL parser.
        params["host"] = host
        if port:
            params["port"] = port
        netloc = auth
    else:
        netloc = auth + host + (f":{port}" if port else "")
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{netloc}/{quote(str(db.get('NAME') or ''), safe='')}{query}"


# Connection parameters of a Django OPTIONS (psycopg's, libpq's) that jobq's
# driver, asyncpg, reads from a URL too. asyncpg sends any other query parameter
# as a server setting, so `options` (often a search_path) is left out: jobq
# names its schema in every statement and needs no search_path.
_LIBPQ_OPTIONS = frozenset(
    {
        "sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "passfile",
        "target_session_attrs", "krbsrvname", "application_name",
    }
)  # fmt: skip


def default_database_url() -> str:
    """DATABASE_URL, else jobq's embedded PostgreSQL (started if need be), as every
    jobq command picks its database: a project's settings can use it for zero setup,

        DATABASES = {"default": database_settings(default_database_url())}
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from jobq.db import embedded

    return embedded.start(Settings.from_env().home.resolve())


def worker_database_url() -> str:
    """DATABASE_URL when set, else the database of JOBQ['DATABASE']."""
    return os.environ.get("DATABASE_URL") or database_url(config().database)


def database_settings(url: str) -> dict[str, Any]:
    """A DATABASES entry for a libpq URL (the reverse of `database_url`), so a
    project can name one DATABASE_URL for Django and jobq alike:

        DATABASES = {"default": database_settings(os.environ["DATABASE_URL"])}

    Query parameters go to OPTIONS (psycopg passes them to libpq), but `host`
    (a Unix socket folder, as `jobq db url` prints) becomes HOST."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ImproperlyConfigured(f"jobq: not a postgresql:// URL: {parts.scheme}://...")
    options = dict(parse_qsl(parts.query))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": options.pop("host", None) or parts.hostname or "",
        "PORT": str(parts.port or options.pop("port", "") or ""),
        "OPTIONS": options,
    }
