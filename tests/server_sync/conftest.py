"""Fixtures for the server tests: an app on a real SQLite file, a device, wire helpers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from conflict import Hlc
from protocol import PROTOCOL_VERSION, Ack, Batch, Entry, compress, decode_ack, encode_batch
from server_sync import add_device, create_app, create_engine, upgrade
from server_sync.db import alembic_config
from server_sync.extension import server_state
from simulations.procs import scratch_schema, wait_ready
from tests.whole import UNSET, whole

TABLES = ("devices", "ops", "records")


def stamp(counter: int, node: str = "n1", wall_ms: int = 1_700_000_000_000) -> str:
    """The string form of an HLC stamp."""
    return str(Hlc(wall_ms, counter, node))


@dataclass
class Wire:
    """Builds one device's entries and batches and posts them to the app."""

    client: FlaskClient
    device_id: str
    token: str
    sent: int = field(default=0)

    def entry(self, seq: int, tx: str = "t1", **over: Any) -> Entry:
        """An upsert of customers/c1 unless told otherwise."""
        values: dict[str, Any] = {
            "op_id": f"op-{seq}",
            "device_id": self.device_id,
            "seq": seq,
            "tx_id": tx,
            "tx_count": UNSET,  # batch() fills it in unless a test sets it
            "hlc": stamp(seq),
            "collection": "customers",
            "record_id": "c1",
            "kind": "upsert",
            "fields": {"name": "Zhang Wei", "phone": "+86 138 0013 8000"},
            "schema_version": 1,
        }
        values.update(over)
        return Entry(**values)

    def batch(self, *entries: Entry, version: str = PROTOCOL_VERSION) -> Batch:
        """A batch of ``entries`` with a fresh batch id."""
        self.sent += 1
        return Batch(version, f"b-{self.sent}", self.device_id, whole(entries))

    def post(
        self,
        body: Batch | bytes,
        *,
        token: str | None = None,
        encoding: str = "gzip",
        headers: Mapping[str, str] | None = None,
    ) -> TestResponse:
        """POST /v1/batches; a Batch is encoded and compressed, bytes are sent as they are."""
        data = compress(encode_batch(body), encoding) if isinstance(body, Batch) else body
        sent = {
            "Authorization": f"Bearer {self.token if token is None else token}",
            "Content-Type": "application/json",
            "Content-Encoding": encoding,
            **(headers or {}),
        }
        return self.client.post("/v1/batches", data=data, headers=sent)

    def ack(self, batch: Batch) -> Ack:
        """POST a batch that must be answered 200, and decode the ack."""
        response = self.post(batch)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "application/json"
        return decode_ack(response.get_data())


def rows(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the server's tables, sorted: compare before/after to prove no write."""
    with engine.connect() as conn:
        return {
            t: sorted(tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t}"))) for t in TABLES
        }


def error_of(response: TestResponse | httpx.Response) -> dict[str, Any]:
    """The ``error`` member of a JSON error answer."""
    body = response.json
    body = body() if callable(body) else body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def migrate(engine: sa.Engine, revision: str, down: bool = False) -> None:
    """Move ``engine``'s database to ``revision`` with Alembic (up, or down)."""
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


@contextmanager
def database_at(
    revision: str, *, sqlite: Path | None = None, pg_url: str | None = None
) -> Iterator[sa.Engine]:
    """An engine on a database at ``revision``: a new SQLite file, or a PostgreSQL scratch
    schema (migrated to head, then down), disposed (and dropped) afterwards."""
    with contextlib.ExitStack() as stack:
        if pg_url is not None:
            url = stack.enter_context(scratch_schema(pg_url, "fs_mig"))
        else:
            assert sqlite is not None
            url = f"sqlite:///{sqlite}"
        engine = create_engine(url)
        stack.callback(engine.dispose)
        migrate(engine, revision, down=pg_url is not None)
        yield engine


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file URL."""
    return f"sqlite:///{tmp_path / 'server.db'}"


@pytest.fixture
def app(sqlite_url: str) -> Iterator[Flask]:
    """The real app on a SQLite file in tmp_path (migrated at creation)."""
    app = create_app({"DATABASE_URL": sqlite_url, "TESTING": True})
    yield app
    server_state(app).engine.dispose()


@pytest.fixture
def engine(app: Flask) -> sa.Engine:
    """The app's engine."""
    return server_state(app).engine


@pytest.fixture
def wire(app: Flask, engine: sa.Engine) -> Wire:
    """A freshly enrolled device talking to ``app`` through the test client."""
    with engine.begin() as conn:
        device_id, token = add_device(conn, "rep phone")
    return Wire(app.test_client(), device_id, token)


# --- PostgreSQL and real processes ---------------------------------------------------


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A URL whose connections use a fresh, migrated PostgreSQL schema of their own."""
    with scratch_schema(pg_url, "fs_test") as url:
        yield url


@dataclass
class ServerProcess:
    """A server running in a child process on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start server processes that are always stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(argv: list[str], env: Mapping[str, str], port: int) -> ServerProcess:
        log = tmp_path / f"server-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                cwd=tmp_path,
            )
        server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
        started.append(server)
        _wait_healthy(server)
        return server

    yield start
    for server in started:
        server.process.terminate()
    for server in started:
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


def _wait_healthy(server: ServerProcess, timeout: float = 20.0) -> None:
    try:
        wait_ready(server.base_url, timeout, proc=server.process)
    except (RuntimeError, TimeoutError) as exc:
        raise AssertionError(f"server did not get healthy:\n{server.log.read_text()}") from exc


PYTHON = sys.executable


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A migrated database of each kind: a SQLite file, and a PostgreSQL scratch schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'any.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    engine = create_engine(url)
    if request.param == "sqlite":
        upgrade(engine)
    yield engine
    engine.dispose()
