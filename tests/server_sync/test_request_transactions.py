"""What one POST of a batch costs the database: one connection, as few transactions as
the database allows (docs/performance.md, "End-to-end drain").

Counted with SQLAlchemy's pool and connection events on the app's own engine, for
the second batch of a device (the first may pay for a new pool connection).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from protocol import Batch
from server_sync import add_device, create_app
from server_sync.extension import server_state

from .conftest import Wire, error_of, rows


@pytest.fixture
def pg_app(pg_schema_url: str) -> Iterator[Flask]:
    """The real app on a fresh PostgreSQL schema."""
    app = create_app({"DATABASE_URL": pg_schema_url, "TESTING": True})
    yield app
    server_state(app).engine.dispose()


def _device(app: Flask) -> Wire:
    with server_state(app).engine.begin() as conn:
        device_id, token = add_device(conn, "rep phone")
    return Wire(app.test_client(), device_id, token)


def _cost_of_a_batch(app: Flask, wire: Wire) -> Counter[str]:
    """Pool checkouts, BEGINs and COMMITs of the second of two 3-entry batches."""
    wire.ack(_three(wire, 1))
    engine = server_state(app).engine
    seen: Counter[str] = Counter()

    def count(name: str) -> Any:
        return lambda *_args: seen.update([name])

    hooks = [
        (engine.pool, "checkout", count("checkout")),
        (engine, "begin", count("begin")),
        (engine, "commit", count("commit")),
    ]
    for target, name, fn in hooks:
        sa.event.listen(target, name, fn)
    try:
        ack = wire.ack(_three(wire, 4))
    finally:
        for target, name, fn in hooks:
            sa.event.remove(target, name, fn)
    assert [r.status for r in ack.results] == ["applied"] * 3
    return seen


def _three(wire: Wire, first: int) -> Batch:
    """Three one-entry transactions on three new customers."""
    seqs = range(first, first + 3)
    return wire.batch(*(wire.entry(s, tx=f"t{s}", record_id=f"c{s}") for s in seqs))


def test_sqlite_one_connection_a_read_and_a_write_transaction(app: Flask) -> None:
    # The apply's BEGIN IMMEDIATE takes the write lock; the token check before the
    # body is read must not, so it reads in a transaction of its own.
    seen = _cost_of_a_batch(app, _device(app))
    assert seen == {"checkout": 1, "begin": 2, "commit": 2}


def test_postgres_a_batch_is_one_connection_and_one_transaction(pg_app: Flask) -> None:
    seen = _cost_of_a_batch(pg_app, _device(pg_app))
    assert seen == {"checkout": 1, "begin": 1, "commit": 1}


def test_postgres_with_a_rate_limit_the_check_commits_first(pg_schema_url: str) -> None:
    # A refusal must roll back the counter alone, and the counter row must not stay
    # locked for the length of an apply: the check keeps a transaction of its own.
    app = create_app({"DATABASE_URL": pg_schema_url, "TESTING": True, "RATE_LIMIT_DEVICE": 1000})
    try:
        seen = _cost_of_a_batch(app, _device(app))
    finally:
        server_state(app).engine.dispose()
    assert seen == {"checkout": 1, "begin": 2, "commit": 2}


def test_postgres_a_bad_body_after_the_check_writes_nothing_and_leaks_nothing(
    pg_app: Flask,
) -> None:
    wire = _device(pg_app)
    engine = server_state(pg_app).engine
    before = rows(engine)

    response = wire.post(b"\x1f\x8b not gzip at all")

    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_batch"
    assert rows(engine) == before
    assert engine.pool.checkedout() == 0
    # The connection went back clean: the next batch on it applies.
    ack = wire.ack(wire.batch(wire.entry(1)))
    assert [r.status for r in ack.results] == ["applied"]
