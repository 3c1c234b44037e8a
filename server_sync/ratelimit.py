"""Load shedding shared by every server process: fixed-window counters in the database.

Each POST of a batch adds one to two counters, the device's and the total, for
the current window (``floor(now / window)``), with one atomic
``INSERT … ON CONFLICT DO UPDATE … RETURNING``. Whichever process serves the
request, the count is the database's, so the limit holds across workers and
machines. Over the limit the request is refused before its body is parsed, with
429 and ``Retry-After`` = the seconds left in the window.

Old windows are pruned by the first request of each new window, whichever limits
are set. With a total limit, the total counter's first bump in a window deletes
every scope's windows older than ``KEEP_WINDOWS``. With per-device limits only, a
device's first bump deletes that device's own old windows (a primary-key range), so
a device that stops sending keeps at most ``KEEP_WINDOWS + 1`` rows. Never both: a
device deleting its rows while the total prune deletes them too deadlocks on
PostgreSQL (each waits for a row the other locked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sqlalchemy as sa

from .db import upsert_into
from .errors import RateLimited
from .models import rate_windows

#: Scope of the counter every request adds to.
TOTAL = "*"

#: Windows kept behind the current one before pruning (late requests still count).
KEEP_WINDOWS = 2


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Batches allowed per ``window`` seconds, per device and in total (None: no limit)."""

    per_device: int | None = None
    total: int | None = None
    window: float = 1.0

    def __post_init__(self) -> None:
        if self.window <= 0:
            raise ValueError("window must be > 0 seconds")
        for limit in (self.per_device, self.total):
            if limit is not None and limit < 1:
                raise ValueError("a rate limit is at least 1 batch per window")

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return self.per_device is not None or self.total is not None


def admit(conn: sa.Connection, device_id: str, limit: RateLimit, now: float) -> None:
    """Count one batch of ``device_id`` at ``now``; raise RateLimited if over a limit."""
    if not limit.enabled:
        return
    window = math.floor(now / limit.window)
    retry_after = max(1, math.ceil((window + 1) * limit.window - now))
    for scope, allowed in ((f"device:{device_id}", limit.per_device), (TOTAL, limit.total)):
        if allowed is None:
            continue
        count = _bump(conn, scope, window)
        if count == 1 and (scope == TOTAL or limit.total is None):
            _prune(conn, window, None if scope == TOTAL else scope)
        if count > allowed:
            who = "this device" if scope != TOTAL else "all devices together"
            raise RateLimited(
                f"over {allowed} batches per {limit.window:g} s for {who}; retry later",
                retry_after=retry_after,
                details={"scope": "device" if scope != TOTAL else "total", "limit": allowed},
            )


def _bump(conn: sa.Connection, scope: str, window: int) -> int:
    stmt = (
        upsert_into(conn, rate_windows)
        .values(scope=scope, window=window, count=1)
        .on_conflict_do_update(
            index_elements=[rate_windows.c.scope, rate_windows.c.window],
            set_={"count": rate_windows.c.count + 1},
        )
        .returning(rate_windows.c.count)
    )
    return int(conn.execute(stmt).scalar_one())


def _prune(conn: sa.Connection, window: int, scope: str | None) -> None:
    """Delete windows older than KEEP_WINDOWS behind ``window``: of ``scope``, or of all."""
    stale = sa.delete(rate_windows).where(rate_windows.c.window < window - KEEP_WINDOWS)
    if scope is not None:
        stale = stale.where(rate_windows.c.scope == scope)
    conn.execute(stale)
