"""Fuzz the whole inbound path: bytes -> decompress -> decode -> validate -> canonical
encode -> apply (SQLite). Only the protocol's own errors may escape, and apply after a
successful decode never raises anything else (issue 7)."""

from __future__ import annotations

import copy
import gzip
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    EntryInvalid,
    ProtocolError,
    crm_registry,
    decode_batch,
    decompress,
    encode_batch,
)
from protocol.constants import PROTOCOL_VERSION
from server_sync import create_engine, upgrade
from server_sync.models import devices
from server_sync.report import store_report
from server_sync.service import apply_batch

#: Fixed seed in CI (env CI set), bounded examples everywhere.
FUZZ = settings(
    max_examples=int(os.environ.get("FIELDSYNC_FUZZ_EXAMPLES", "300")),
    derandomize=bool(os.environ.get("CI")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

REGISTRY = crm_registry()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def _entry(i: int, tx: int) -> dict[str, Any]:
    return {
        "op_id": f"op-{i}",
        "device_id": "d1",
        "seq": i + 1,
        "tx_id": f"tx-{tx}",
        "tx_count": 1,
        "hlc": f"{NOW_MS}-{i:05d}-d1",
        "collection": ["customers", "leads", "opportunities", "followups"][i % 4],
        "record_id": f"r{i}",
        "kind": "upsert",
        "fields": [
            {"name": f"C {i}", "phone": "+86 138 0013 8000", "email": "a@b.cn"},
            {"name": "L", "score": 7, "source": "visit"},
            {"customer_id": "r0", "title": "t", "amount": "12.50",
             "close_date": "2026-03-01T08:00:00+08:00"},
            {"customer_id": "r0", "due_at": "2026-03-01T08:00:00Z", "done": False},
        ][i % 4],
        "schema_version": 1,
    }  # fmt: skip


def _valid(n: int, report: bool = False) -> dict[str, Any]:
    entries = [_entry(i, i // 2) for i in range(n)]
    for e in entries:  # two entries per transaction, the last one maybe alone
        e["tx_count"] = sum(1 for other in entries if other["tx_id"] == e["tx_id"])
    raw = {
        "protocol_version": PROTOCOL_VERSION,
        "batch_id": "b1",
        "device_id": "d1",
        "entries": entries,
    }
    if report:  # protocol 2.1: a report of every event kind (and maybe no entries)
        raw["report"] = _report()
    return raw


def _report() -> dict[str, Any]:
    t = NOW_MS - 3_600_000
    return {
        "sent_ms": t + 60_000,
        "journal": [
            {"id": "e1", "at_ms": t, "kind": "link", "channel": "wifi", "up": False,
             "source": "os"},
            {"id": "e2", "at_ms": t + 1, "kind": "attempt", "channel": "wifi",
             "started_ms": t, "ended_ms": t + 1, "entries": 2, "bytes_sent": 10,
             "bytes_received": 5, "outcome": "ok", "server_time_ms": t + 2},
            {"id": "e3", "at_ms": t + 2, "kind": "status", "queue_depth": 1,
             "free_bytes": 10, "app_version": "1", "protocol_version": "2.1"},
            {"id": "e4", "at_ms": t + 3, "kind": "refused", "code": "storage_low",
             "free_bytes": 1},
            {"id": "e5", "at_ms": t + 4, "kind": "databox", "action": "discard",
             "op_id": "op-9", "reason": "dup", "command_id": "c1"},
        ],
        "databox": {
            "counts": {"pending": 1, "in_flight": 0, "parked": 1},
            "reasons": {"field_too_long": 1},
            "parked": [{"op_id": "op-9", "collection": "customers", "record_id": "r9",
                        "code": "too_long", "message": "notes", "age_s": 9}],
        },
        "outcomes": [{"command_id": "c1", "status": "done"}],
    }  # fmt: skip


#: Values hostile input is made of (each one got a 500 somewhere before).
HOSTILE = st.sampled_from(
    [
        None, True, 0, -1, 2**31, 2**63, -(2**63) - 1, 10**300, 1e300, -0.0, 1.5,
        "", "\x00", "\ud800", "a\udfff", "\n", "\x85", "²", "１２", "٣", "1e999999",
        "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "NaN", "-Infinity",
        "１７００００００００００１-00001-d1", "x" * 65, "x" * 129, "1 " * 3000,
        [], {}, {"": 1}, ["\ud800"], "²․0", "1.0", "99.0",
    ]
)  # fmt: skip


#: Field names of the CRM collections (and one that none has).
FIELD_NAMES = sorted({n for c in REGISTRY.names() for n in REGISTRY.get(c).fields} | {"nope"})


def _slots(raw: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of the value tree, the root's members included."""
    found: list[tuple[Any, Any]] = []
    stack = [raw]
    while stack:
        item = stack.pop()
        keys = list(item) if isinstance(item, dict) else range(len(item))
        for key in keys:
            found.append((item, key))
            if isinstance(item[key], dict | list):
                stack.append(item[key])
    return found


@st.composite
def structural(draw: st.DrawFn) -> bytes:
    """A valid batch with a few members replaced, removed, added or duplicated."""
    with_report = draw(st.booleans())
    raw = _valid(draw(st.integers(0 if with_report else 1, 4)), report=with_report)
    if draw(st.booleans()):  # only field values: most such batches decode, then apply
        for entry in raw["entries"]:
            name = draw(st.sampled_from(FIELD_NAMES))
            entry["fields"][name] = copy.deepcopy(draw(HOSTILE | st.integers() | st.text()))
        return json.dumps(raw, ensure_ascii=True).encode()
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(raw)
        target, key = slots[draw(st.integers(0, len(slots) - 1))]
        action = draw(st.sampled_from(["set", "set", "set", "delete", "add"]))
        if action == "set":
            target[key] = copy.deepcopy(draw(HOSTILE | st.integers() | st.text(max_size=8)))
        elif action == "delete":
            del target[key]
        elif isinstance(target, dict):
            target[draw(st.sampled_from(["extra", "\ud800", "x" * 129, ""]))] = copy.deepcopy(
                draw(HOSTILE)
            )
        else:
            target.append(copy.deepcopy(draw(HOSTILE)))
    text = json.dumps(raw, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        text = text.replace('"kind": ', '"kind": "patch", "kind": ', 1)  # a duplicate key
    return text.encode("utf-8", "surrogatepass")


@st.composite
def byte_mutated(draw: st.DrawFn) -> bytes:
    """A valid batch's canonical bytes with a few bytes flipped, cut or inserted."""
    data = bytearray(json.dumps(_valid(draw(st.integers(1, 3)), draw(st.booleans()))).encode())
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(
                st.binary(min_size=1, max_size=8)
                | st.sampled_from([b"\\ud800", b"\\u0000", b"9" * 5000, b"1e400"])
            )
        if not data:
            data = bytearray(b"{")
    return bytes(data)  # fmt: skip


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "server.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _pipeline(engine: sa.Engine, body: bytes, encoding: str) -> None:
    """Run one body through every stage; refusals may only be the protocol's errors."""
    try:
        batch = decode_batch(decompress(body, encoding))
        assert decode_batch(encode_batch(batch)) == batch  # canonical encode round-trips
    except (ProtocolError, EntryInvalid):
        return
    conn = engine.connect()
    tx = conn.begin()
    try:
        conn.execute(
            devices.insert().prefix_with("OR IGNORE"),
            {"id": batch.device_id, "name": "fuzz", "token_hash": batch.device_id,
             "created_at": NOW},
        )  # fmt: skip
        try:
            ack = apply_batch(conn, batch.device_id, batch, REGISTRY, now=NOW)
        except ProtocolError:
            return  # refused whole: the caller rolls back (below)
        assert [r.op_id for r in ack.results] == [e.op_id for e in batch.entries]
        store_report(conn, batch.device_id, batch, NOW_MS)  # a decoded report always stores
    finally:
        tx.rollback()
        conn.close()


@FUZZ
@given(body=st.binary(max_size=400), gzipped=st.booleans())
def test_random_bytes(engine: sa.Engine, body: bytes, gzipped: bool) -> None:
    _pipeline(engine, gzip.compress(body) if gzipped else body, "gzip" if gzipped else "identity")


@FUZZ
@given(body=byte_mutated(), gzipped=st.booleans(), trailer=st.binary(max_size=4))
def test_byte_mutations(engine: sa.Engine, body: bytes, gzipped: bool, trailer: bytes) -> None:
    wire = gzip.compress(body) + trailer if gzipped else body
    _pipeline(engine, wire, "gzip" if gzipped else "identity")


@FUZZ
@given(body=structural())
def test_structural_mutations(engine: sa.Engine, body: bytes) -> None:
    _pipeline(engine, body, "identity")


def test_the_valid_batches_the_fuzz_starts_from_apply_cleanly(engine: sa.Engine) -> None:
    batch = decode_batch(json.dumps(_valid(4, report=True)).encode())
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(
            devices.insert(), {"id": "d1", "name": "f", "token_hash": "h", "created_at": NOW}
        )
        ack = apply_batch(conn, "d1", batch, REGISTRY, now=NOW)
        store_report(conn, "d1", batch, NOW_MS)
        events = conn.execute(sa.text("SELECT count(*) FROM journal_events")).scalar()
        tx.rollback()
    assert [r.status for r in ack.results] == ["applied"] * 4
    assert events == 5
