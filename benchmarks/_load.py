"""Load generator child for the many-devices benchmark: one process, many device threads.

``python -m benchmarks._load SPEC.json OUT.json``. SPEC holds the server URL, the
path to post to, the start time (wall clock, so every process starts together), a
deadline, and per device its token and pre-encoded request bodies. Each device
thread posts its bodies one after the other (a device sends its next batch when the
last one was answered) and records every latency. Bounded in count (the bodies)
and in time (the deadline).
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from typing import Any

import httpx


def main(spec_path: str, out_path: str) -> None:
    """Run every device of the spec; write latencies and counts as JSON."""
    with open(spec_path) as f:
        spec = json.load(f)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def device(d: dict[str, Any]) -> None:
        bodies = [base64.b64decode(b) for b in d["bodies"]]
        headers = {**spec["headers"], **({"Authorization": f"Bearer {d['token']}"})}
        latencies: list[float] = []
        errors: list[str] = []
        with httpx.Client(base_url=spec["url"], timeout=120, headers=headers) as client:
            time.sleep(max(0.0, spec["start_at"] - time.time()))
            first = time.time()
            for body in bodies:
                if time.time() > spec["deadline"]:
                    errors.append("deadline")
                    break
                t0 = time.perf_counter()
                try:
                    response = client.post(spec["path"], content=body)
                    if response.status_code != 200:
                        errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                        continue
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - t0)
            last = time.time()
        with lock:
            results.append({"latencies": latencies, "errors": errors, "first": first, "last": last})

    threads = [threading.Thread(target=device, args=(d,)) for d in spec["devices"]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(out_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
