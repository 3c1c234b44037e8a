"""Child process of the cold-start benchmark: open an outbox, send its first batch.

``python -m benchmarks._cold_child OUTBOX URL TOKEN`` prints one JSON line: seconds
from opening to the first ack applied, and the process's RSS before opening and at
its peak (kB, from /proc/self/status; ru_maxrss where /proc is missing).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import client_sync  # noqa: F401  (import cost is not what this measures)
from client_sync import HttpChannel
from client_sync._outbox import Outbox

from ._common import KEY


def main(argv: list[str]) -> None:
    """Open, take the first batch, send it, apply the ack; print the figures."""
    path, url, token = argv
    with HttpChannel("wifi", url, token) as channel:
        before = _rss_kb("VmRSS")
        start = time.perf_counter()
        outbox = Outbox(path, KEY, device_id=None, clock=time.time)
        try:
            batch = outbox.take_batch(metered=False)
            if batch is None:
                raise RuntimeError(f"{path} has nothing pending")
            outbox.apply(batch, channel.send(batch))
        finally:
            outbox.close()
        seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_before_kb": before,
                "peak_kb": _rss_kb("VmHWM"),
                "sent": len(batch),
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
