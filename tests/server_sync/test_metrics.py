"""/metrics: counts of batches, entries, rejections and apply time, fleet gauges from the
database; summed over the workers of a real two-worker gunicorn (multi-process mode)."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from flask import Flask
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from conflict import Hlc
from protocol import PROTOCOL_VERSION, Batch, Entry, compress, encode_batch
from server_sync import add_device, create_engine, upgrade
from server_sync.admins import add_admin
from server_sync.commands import create_command
from simulations.procs import HOST, free_port
from tests.server_sync.conftest import PYTHON, ServerProcess, Wire

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text page, by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(page: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 if absent: a labelled counter not yet touched)."""
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_batches_entries_rejections_and_apply_time(
    app: Flask, wire: Wire, engine: sa.Engine
) -> None:
    scrape = lambda: samples(wire.client.get("/metrics").get_data(as_text=True))  # noqa: E731
    before = scrape()
    wire.ack(wire.batch(wire.entry(1, "t1"), wire.entry(2, "t1")))
    wire.ack(wire.batch(wire.entry(3, "t2", fields={"name": "x" * 101}), wire.entry(4, "t3")))
    wire.ack(wire.batch(wire.entry(4, "t3")))  # a replay
    assert wire.post(wire.batch(wire.entry(5)), token="nobody").status_code == 401
    with engine.begin() as conn:
        admin, _ = add_admin(conn, "a", "admin")
        create_command(conn, wire.device_id, "discard", "op-3", "bad", admin_id=admin.admin_id)
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("fieldsync_batches_total", status="200") == 3
    assert grew("fieldsync_batches_total", status="401") == 1
    assert grew("fieldsync_entries_total", result="applied") == 3
    assert grew("fieldsync_entries_total", result="rejected") == 1
    assert grew("fieldsync_entries_total", result="duplicate") == 1
    assert grew("fieldsync_rejections_total", code="too_long") == 1
    assert grew("fieldsync_apply_seconds_count") == 3
    assert grew("fieldsync_apply_seconds_bucket", le="+Inf") == 3
    assert value(after, "fieldsync_devices_enrolled") == 1
    assert value(after, "fieldsync_devices_seen") == 1
    assert value(after, "fieldsync_commands_pending") == 1
    response = wire.client.get("/metrics")
    assert response.mimetype == "text/plain"


def _batch(device_id: str, n: int) -> bytes:
    entry = Entry(
        op_id=f"op-{n}",
        device_id=device_id,
        seq=n,
        tx_id=f"t{n}",
        tx_count=1,
        hlc=str(Hlc(1_700_000_000_000, n, device_id)),
        collection="customers",
        record_id=f"c{n}",
        kind="upsert",
        fields={"name": f"Customer {n}"},
        schema_version=1,
    )
    return compress(encode_batch(Batch(PROTOCOL_VERSION, f"b{n}", device_id, (entry,))))


def _headers(token: str, length: int) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Content-Length": str(length),
    }


def _per_process(folder: Path) -> dict[str, float]:
    """Batches answered 200, per worker file (what each process counted itself)."""
    found: dict[str, float] = {}
    for path in sorted(folder.glob("counter_*.db")):
        for key, count, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == "fieldsync_batches_total" and labels == {"status": "200"}:
                found[path.name] = count
    return found


@pytest.mark.slow
def test_gunicorn_workers_counts_are_summed(
    spawn: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    engine = create_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            device_id, token = add_device(conn, "phone")
    finally:
        engine.dispose()
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left over from another run")  # must be emptied
    port = free_port()
    argv = [PYTHON, "-m", "gunicorn", "-w", "2", "-b", f"{HOST}:{port}"]
    argv += ["-c", "python:server_sync.gunicorn_conf", "server_sync.wsgi:app"]
    server = spawn(
        argv, {"FIELDSYNC_DATABASE_URL": url, "PROMETHEUS_MULTIPROC_DIR": str(folder)}, port
    )

    # One worker takes a batch whose body has not all arrived and waits for the rest, so
    # the other worker answers every batch sent meanwhile: both count, deterministically.
    held = _batch(device_id, 1)
    head = "".join(f"{k}: {v}\r\n" for k, v in _headers(token, len(held)).items())
    with socket.create_connection((HOST, port), timeout=60) as slow:
        slow.sendall(f"POST /v1/batches HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + held[:5])
        for n in range(2, 7):
            body = _batch(device_id, n)
            sent = httpx.post(
                f"{server.base_url}/v1/batches", content=body, headers=_headers(token, len(body))
            )
            assert sent.status_code == 200, sent.text
        slow.sendall(held[5:])
        answer = slow.makefile("rb").readline()
    assert answer.startswith(b"HTTP/1.1 200"), answer

    per_process = _per_process(folder)
    assert sorted(per_process.values()) == [1.0, 5.0], per_process
    pages = [samples(httpx.get(f"{server.base_url}/metrics").text) for _ in range(4)]
    for page in pages:  # whichever worker answers, the sums are the same
        assert value(page, "fieldsync_batches_total", status="200") == 6
        assert value(page, "fieldsync_entries_total", result="applied") == 6
        assert value(page, "fieldsync_apply_seconds_count") == 6
        assert value(page, "fieldsync_devices_seen") == 1
        assert value(page, "fieldsync_commands_pending") == 0
    assert Counter(p.name.split("_")[0] for p in folder.glob("*.db"))["counter"] == 2
