"""One warning line per kind of database failure, however many paths retry it.

While the database is down every part of a jobq process fails at once and keeps
retrying: the worker's claim, heartbeat, completer, listener, scheduler and
maintenance loops, the wait hub, the readiness probe and each HTTP request. Each
of them reports a failure here (`OUTAGE.failed`), which logs the first one of
each kind (the exception's class: refused, reset, shutting down, no socket, ...)
as one WARNING line without a traceback, the repeats within
OUTAGE_LOG_WINDOW_SECONDS at DEBUG, and the first success after (`recovered`)
as one INFO line. asyncpg's own pool-floor warning is quieted the same way by
`jobq.db.pool.PoolFloorFilter`.

Errors that are not about the connection (a bug, a missing table) are not for
this module: they keep their traceback where they are logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

# A database down for an hour still says so, once a minute per kind.
OUTAGE_LOG_WINDOW_SECONDS = 60.0


class OutageLog:
    """Rate-limits failure lines by kind, process-wide (`OUTAGE`)."""

    def __init__(self, window: float = OUTAGE_LOG_WINDOW_SECONDS) -> None:
        self.window = window
        self._said: dict[str, float] = {}
        # Worker processes' handler threads never call it, but the wait hub and
        # the API may run on another loop of the same process (tests, embedding).
        self._lock = threading.Lock()

    def failed(
        self,
        log: logging.Logger,
        what: str,
        exc: BaseException,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        """`what` failed with `exc`: a WARNING line if its kind was not said lately."""
        kind = type(exc).__name__
        # The kind as a record attribute too, for filters and tests to read.
        fields = {**(extra or {}), "failure_kind": kind}
        if self.first(kind):
            log.warning(
                "%s failed: %s: %s (database unreachable? retrying; said once per %gs "
                "per kind of failure)",
                what,
                kind,
                exc,
                self.window,
                extra=fields,
            )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("%s failed: %s: %s", what, kind, exc, extra=fields)

    def first(self, kind: str) -> bool:
        """Whether a failure of `kind` is the first one within the window (and note it)."""
        now = time.monotonic()
        with self._lock:
            last = self._said.get(kind)
            if last is not None and now - last < self.window:
                return False
            self._said[kind] = now
            return True

    def recovered(
        self, log: logging.Logger, what: str, extra: Mapping[str, object] | None = None
    ) -> None:
        """`what` works again: one INFO line if a failure was said since the last one."""
        with self._lock:
            said = bool(self._said)
            self._said.clear()
        if said:
            log.info("%s works again: the database is reachable", what, extra=extra)

    def reset(self) -> None:
        """Forget what was said (tests)."""
        with self._lock:
            self._said.clear()


OUTAGE = OutageLog()
