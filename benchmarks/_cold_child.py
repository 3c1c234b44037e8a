"""Child process of the cold-start benchmark: open an outbox, send its first batch.

``python -m benchmarks._cold_child OUTBOX URL TOKEN DEVICE_ID`` prints one JSON line:
seconds from opening to the first ack applied, and the process's RSS before opening
and at its peak (kB, from /proc/self/status; ru_maxrss where /proc is missing).

Only the public API: a ``SyncClient`` whose channel answers the first batch through
the real server and fails the second as a dead link, with one attempt per batch, so
``sync_now()`` returns after exactly one batch went through. The clock stops when
the second batch is offered, i.e. after the first ack was applied.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import client_sync  # noqa: F401  (import cost is not what this measures)
from client_sync import HttpChannel, OutgoingBatch, RetryPolicy, SyncClient
from client_sync.errors import LinkFailure
from protocol import Ack

from ._common import KEY


class FirstBatchOnly:
    """A channel that sends one batch for real, then stops the clock and fails."""

    metered = False

    def __init__(self, inner: HttpChannel) -> None:
        self.name = inner.name
        self._inner = inner
        self.sent = 0
        self.stopped_at: float | None = None

    def send(self, batch: OutgoingBatch) -> Ack:
        """The first batch through the server; any later one is a dead link."""
        if self.sent:
            self.stopped_at = self.stopped_at or time.perf_counter()
            raise LinkFailure("first batch only", channel=self.name)
        self.sent = len(batch)
        return self._inner.send(batch)

    def close(self) -> None:
        """Close the real channel."""
        self._inner.close()


def main(argv: list[str]) -> None:
    """Open, take the first batch, send it, apply the ack; print the figures."""
    path, url, token, device_id = argv
    channel = FirstBatchOnly(HttpChannel("wifi", url, token))
    before = _rss_kb("VmRSS")
    start = time.perf_counter()
    with SyncClient(
        path, KEY, device_id=device_id, channels=[channel], retry=RetryPolicy(max_attempts=1)
    ) as client:
        client.sync_now()
        end = channel.stopped_at or time.perf_counter()
    if not channel.sent:
        raise RuntimeError(f"{path} has nothing pending")
    print(
        json.dumps(
            {
                "seconds": end - start,
                "rss_before_kb": before,
                "peak_kb": _rss_kb("VmHWM"),
                "sent": channel.sent,
            }
        )
    )


def _rss_kb(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


if __name__ == "__main__":
    main(sys.argv[1:])
