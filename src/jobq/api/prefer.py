"""`Prefer: wait=N` (RFC 7240 §4.3): hold a job's answer until it ends or N seconds pass.

`GET /v1/jobs/{id}` and `POST /v1/jobs` honour it. N is capped by
`JOBQ_MAX_WAIT_SECONDS`; the answer carries `Preference-Applied: wait=<the N
used>`. As RFC 7240 §2 asks, a preference the server does not understand (or a
`wait` whose value is not a non-negative integer) is ignored: the request is
answered at once, without `Preference-Applied`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header

# A Prefer header longer than this is not one jobq reads (preferences are short).
MAX_PREFER_CHARS = 1000

PreferHeader = Annotated[
    str | None,
    Header(
        alias="Prefer",
        max_length=MAX_PREFER_CHARS,
        description=(
            "RFC 7240. `wait=N`: answer when the job is succeeded, failed_permanent or "
            "cancelled, or after N seconds (capped by JOBQ_MAX_WAIT_SECONDS, default 60), "
            "with the job as it is then and `Preference-Applied: wait=N`. Other "
            "preferences, and a `wait` that is not a whole number of seconds, are ignored."
        ),
        examples=["wait=10"],
    ),
]

PREFERENCE_APPLIED_HEADER: dict[str, Any] = {
    "Preference-Applied": {
        "description": "`wait=N` when the request's `Prefer: wait` was honoured (N as capped).",
        "schema": {"type": "string", "pattern": "^wait=[0-9]+$"},
    }
}


def wait_seconds(prefer: str | None, cap: float) -> int | None:
    """The seconds `Prefer: wait=N` asks for, capped; None when it asks for no wait."""
    if not prefer:
        return None
    # Preferences are comma-separated `token[=value]`, each with optional `;params`.
    for preference in prefer.split(","):
        name, _, rest = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() != "wait":
            continue
        value = rest.strip().strip('"')
        if not value.isascii() or not value.isdigit():
            return None
        return min(int(value), int(cap))
    return None
