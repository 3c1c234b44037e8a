"""5. Many devices: 200 device loops at once against one gunicorn server on 127.0.0.1.

Each device is a thread in one of a few load processes, posting its pre-encoded,
gzipped batches one after the other (closed loop). The server is gunicorn with
several sync workers on SQLite and, when available, PostgreSQL. The same load
against the naive endpoint under the same gunicorn (uncompressed JSON, one SQLite
table) is the same-run baseline: ``devices_sqlite_vs_naive`` is our batches per
second over its. The load generator shares the machine's cores with the server,
so absolute figures are a floor, not a capacity.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from conflict.hlc import Hlc
from protocol import PROTOCOL_VERSION, Batch, Entry, compress, encode_batch, to_wire
from protocol.constants import MEDIA_TYPE
from server_sync import add_device, create_engine, upgrade

from ._common import SEED, Sizes, customer_fields, median, percentile
from ._procs import ROOT, gunicorn
from .apply import pg_engine

#: Seconds the whole load may take, beyond which device loops stop by themselves.
DEADLINE_S = 300


def run(sizes: Sizes, workdir: Path | None = None) -> dict[str, Any]:
    """Batches per second and p50/p99 latency, SQLite, naive and PostgreSQL."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=workdir, prefix="fs-bench-devices-") as tmp:
        base = Path(tmp)
        sqlite_url = f"sqlite:///{base / 'server.db'}"
        engine = create_engine(sqlite_url)
        try:
            upgrade(engine)
            ours = _load(base, sizes, engine, "sqlite")
        finally:
            engine.dispose()
        naive = _load(base, sizes, None, "naive")
        out.update(_figures("sqlite", ours))
        out.update(_figures("naive", naive))
        out["devices_sqlite_vs_naive"] = ours["bps"] / naive["bps"]
        if sizes.postgres_url:
            with pg_engine(sizes.postgres_url) as pg:
                out.update(_figures("pg", _load(base, sizes, pg, "pg")))
    out["devices"] = sizes.devices
    out["device_workers"] = sizes.device_workers
    out["device_entries_per_batch"] = sizes.device_entries
    return out


def _figures(name: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        f"devices_{name}_batches_per_s": result["bps"],
        f"devices_{name}_p50_ms": result["p50"] * 1000,
        f"devices_{name}_p99_ms": result["p99"] * 1000,
        f"devices_{name}_errors": result["errors"],
    }


def _load(base: Path, sizes: Sizes, engine: sa.Engine | None, name: str) -> dict[str, Any]:
    rng = random.Random(SEED)
    devices: list[dict[str, Any]] = []
    if engine is not None:
        with engine.begin() as conn:
            enrolled = [add_device(conn, f"load-{i}") for i in range(sizes.devices)]
    else:
        enrolled = [(f"naive-{i}", "none") for i in range(sizes.devices)]
    for device_id, token in enrolled:
        bodies = [
            base64.b64encode(
                _body(device_id, b, sizes.device_entries, rng, naive=engine is None)
            ).decode()
            for b in range(sizes.device_batches)
        ]
        devices.append({"token": token, "bodies": bodies})
    if engine is None:
        app = f"benchmarks.naive:create_naive_app({str(base / 'naive-load.db')!r})"
        env: dict[str, str] = {}
        headers = {"Content-Type": "application/json"}
        path = "/upload"
    else:
        app = "server_sync.wsgi:app"
        env = {"FIELDSYNC_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
        headers = {"Content-Type": MEDIA_TYPE, "Content-Encoding": "gzip"}
        path = "/v1/batches"
    with gunicorn(app, sizes.device_workers, env) as url:
        shares = [devices[i :: sizes.device_clients] for i in range(sizes.device_clients)]
        start_at = time.time() + 2.0
        procs = []
        for i, share in enumerate(shares):
            spec = base / f"{name}-spec-{i}.json"
            spec.write_text(
                json.dumps(
                    {
                        "url": url,
                        "path": path,
                        "headers": headers,
                        "start_at": start_at,
                        "deadline": start_at + DEADLINE_S,
                        "devices": share,
                    }
                )
            )
            out = base / f"{name}-out-{i}.json"
            cmd = [sys.executable, "-m", "benchmarks._load", str(spec), str(out)]
            procs.append((subprocess.Popen(cmd, cwd=ROOT), out))
        results: list[dict[str, Any]] = []
        for proc, out in procs:
            proc.wait(timeout=DEADLINE_S + 60)
            if proc.returncode != 0:
                raise RuntimeError(f"load process failed with {proc.returncode}")
            results.extend(json.loads(out.read_text()))
    latencies = [t for r in results for t in r["latencies"]]
    errors = [e for r in results for e in r["errors"]]
    if not latencies:
        raise RuntimeError(f"{name}: no batch succeeded: {errors[:3]}")
    elapsed = max(r["last"] for r in results) - min(r["first"] for r in results)
    return {
        "bps": len(latencies) / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "errors": len(errors),
        "median": median(latencies),
    }


def _body(device_id: str, b: int, n: int, rng: random.Random, *, naive: bool) -> bytes:
    wall = 1_780_000_000_000 + b * 1000
    entries = tuple(
        Entry(
            op_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            device_id=device_id,
            seq=b * n + i + 1,
            tx_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            tx_count=1,
            hlc=str(Hlc(wall + i, 0, device_id)),
            collection="customers",
            record_id=f"{device_id[:12]}-{b}-{i}",
            kind="upsert",
            fields=customer_fields(b * n + i, rng),
            schema_version=1,
        )
        for i in range(n)
    )
    batch = Batch(PROTOCOL_VERSION, str(uuid.uuid4()), device_id, entries)
    if naive:
        return json.dumps({"entries": to_wire(batch)["entries"]}).encode()
    return compress(encode_batch(batch))
