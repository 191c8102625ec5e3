"""Progress a running handler reports (`ctx.progress`): validation and the latest-value slot.

A handler may report progress as often as it likes; only the latest report is
kept, in memory, in its job's `ProgressSlot`. The worker's heartbeat takes
what is new from every slot it renews and writes it in the same statement as
the leases (`job_heartbeat`), and the outcome's write carries whatever the
heartbeat had not written yet; so the database sees at most about one progress
write per job and heartbeat, whatever the call rate.

A report is a fraction in [0, 1] and optional details: a JSON object of at
most MAX_PROGRESS_DETAILS_BYTES (as compact UTF-8 JSON), storable as a
payload is (jobq.job_request.find_unstorable). A bad report raises ValueError
in the handler that made it; nothing is kept of it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from jobq.job_request import dump_json, find_unstorable

MAX_PROGRESS_DETAILS_BYTES = 4 * 1024


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """One validated report; `seq` orders the reports of one attempt."""

    fraction: float
    details_json: str | None
    seq: int


def check_progress(fraction: float, details: dict[str, Any] | None) -> tuple[float, str | None]:
    """The report as it is stored (the fraction as a float, the details as compact
    JSON), or ValueError saying what is wrong with it."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ValueError(f"progress must be a number from 0 to 1, not {type(fraction).__name__}")
    if not math.isfinite(fraction) or not 0 <= fraction <= 1:
        raise ValueError(f"progress must be a finite number from 0 to 1, not {fraction!r}")
    if details is None:
        return float(fraction), None
    if not isinstance(details, dict):
        raise ValueError(f"progress details must be a JSON object, not {type(details).__name__}")
    problem = find_unstorable(details)
    if problem:
        raise ValueError(f"progress details: {problem}")
    try:
        text = dump_json(details)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"progress details are not JSON: {exc}") from None
    size = len(text.encode("utf-8"))
    if size > MAX_PROGRESS_DETAILS_BYTES:
        raise ValueError(
            f"progress details take {size} bytes as JSON; at most "
            f"{MAX_PROGRESS_DETAILS_BYTES} are kept"
        )
    return float(fraction), text


class ProgressSlot:
    """The latest report of one running job, and how much of it is written.

    `report()` may be called from a sync handler's thread while the event loop
    reads the slot, hence the lock (held for an assignment, never for I/O)."""

    __slots__ = ("_latest", "_lock", "_written")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: ProgressReport | None = None
        self._written = 0

    def report(self, fraction: float, details: dict[str, Any] | None = None) -> None:
        value, details_json = check_progress(fraction, details)
        with self._lock:
            seq = self._latest.seq + 1 if self._latest else 1
            self._latest = ProgressReport(value, details_json, seq)

    @property
    def latest(self) -> ProgressReport | None:
        return self._latest

    def pending(self) -> ProgressReport | None:
        """The latest report if it is not written yet."""
        with self._lock:
            latest = self._latest
            return latest if latest is not None and latest.seq > self._written else None

    def written(self, report: ProgressReport) -> None:
        """`report` reached the database; a newer one stays pending."""
        with self._lock:
            self._written = max(self._written, report.seq)
