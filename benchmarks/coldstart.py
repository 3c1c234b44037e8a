"""4. Cold start with a big outbox: open one holding 100 k pending entries, send a batch.

Each run is a fresh child process (so its peak RSS is its own) opening a copy of a
prepared outbox, taking the first batch, sending it to a real server on 127.0.0.1
and applying the ack. The small (1 k) and large (100 k) outboxes are measured
interleaved. The first run of each is an untimed warm-up that applies the batch;
every measured run then gets the same answer (duplicates), whatever its size.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from client_sync import SyncClient
from simulations.procs import enrol

from ._common import KEY, SEED, Sizes, customer_fields, interleave, median, paired_ratio
from ._procs import ROOT, fieldsync_server
from .record import NoChannel

#: Entries per local transaction while building an outbox (setup, not measured).
SETUP_TX = 500


def run(sizes: Sizes, workdir: Path | None = None) -> dict[str, Any]:
    """rss_100k_vs_1k, coldstart_100k_vs_1k and the absolute figures."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="fs-bench-cold-") as tmp:
        base = Path(tmp)
        db_url = f"sqlite:///{base / 'server.db'}"
        with fieldsync_server(db_url) as url:
            prepared: dict[str, tuple[Path, str, str]] = {}
            for label, n in (("small", sizes.cold_small), ("large", sizes.cold_large)):
                device = enrol(f"cold-{label}", db_url)
                path = base / f"{label}.db"
                _build(path, device.device_id, n)
                prepared[label] = (path, device.token, device.device_id)
            peaks: dict[str, list[float]] = {"small": [], "large": []}
            grew: dict[str, list[float]] = {"small": [], "large": []}

            def one(label: str, rep: int) -> float:
                source, token, device_id = prepared[label]
                copy = base / f"{label}-run.db"
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{copy}{suffix}").unlink(missing_ok=True)
                shutil.copyfile(source, copy)
                with copy.open("rb+") as f:  # else the child's first fsync flushes the copy
                    os.fsync(f.fileno())
                figures = _child(copy, url, token, device_id)
                if rep >= 0:
                    peaks[label].append(figures["peak_kb"])
                    grew[label].append(figures["peak_kb"] - figures["rss_before_kb"])
                return float(figures["seconds"])

            one("small", -1)
            one("large", -1)
            t_small, t_large = interleave(
                sizes.cold_repeats, lambda r: one("small", r), lambda r: one("large", r)
            )
    return {
        "rss_100k_vs_1k": paired_ratio(peaks["large"], peaks["small"]),
        "coldstart_100k_vs_1k": paired_ratio(t_large, t_small),
        "coldstart_small_s": median(t_small),
        "coldstart_large_s": median(t_large),
        "cold_peak_small_mb": median(peaks["small"]) / 1024,
        "cold_peak_large_mb": median(peaks["large"]) / 1024,
        "cold_growth_small_mb": median(grew["small"]) / 1024,
        "cold_growth_large_mb": median(grew["large"]) / 1024,
        "cold_small_entries": sizes.cold_small,
        "cold_large_entries": sizes.cold_large,
    }


def _build(path: Path, device_id: str, n: int) -> None:
    rng = random.Random(SEED)
    with SyncClient(path, KEY, device_id=device_id, channels=[NoChannel()]) as client:
        for start in range(0, n, SETUP_TX):
            with client.transaction():
                for i in range(start, min(n, start + SETUP_TX)):
                    client.record("customers", f"c-{i}", customer_fields(i, rng))


def _child(path: Path, url: str, token: str, device_id: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks._cold_child", str(path), url, token, device_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cold-start child failed: {done.stderr.strip()[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures
