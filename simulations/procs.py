"""Real processes on 127.0.0.1: a sync server, enrolment, free ports, readiness."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import httpx
import sqlalchemy as sa

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A device's id and token, as ``fieldsync-server devices add --json`` prints them."""

    device_id: str
    token: str


@dataclass(frozen=True, slots=True)
class LiveServer:
    """A running sync server process and the database behind it."""

    url: str
    database_url: str

    def enrol(self, name: str) -> Enrolment:
        """Enrol a device through the server's command line."""
        return enrol(name, self.database_url)

    def ops(self, device_id: str) -> list[sa.Row[tuple[str, int, str]]]:
        """Every op the server stored for ``device_id`` as (op_id, seq, status), by seq."""
        from server_sync.models import ops

        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                query = sa.select(ops.c.op_id, ops.c.seq, ops.c.status)
                query = query.where(ops.c.device_id == device_id).order_by(ops.c.seq)
                return list(conn.execute(query))
        finally:
            engine.dispose()


@contextmanager
def scratch_schema(url: str, prefix: str = "fs_scratch") -> Iterator[str]:
    """A fresh, migrated PostgreSQL schema of its own, dropped after; yields its URL."""
    from server_sync.db import create_engine, upgrade

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        scoped = sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        text = scoped.render_as_string(hide_password=False)
        migrated = create_engine(text)
        try:
            upgrade(migrated)
        finally:
            migrated.dispose()
        yield text
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_cli(*args: str, database_url: str) -> str:
    """Run ``fieldsync-server ARGS`` in a child process; return its stdout."""
    cmd = [sys.executable, "-m", "server_sync.cli", *args, "--database-url", database_url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def enrol(name: str, database_url: str) -> Enrolment:
    """Enrol a device through the server's command line."""
    out = json.loads(server_cli("devices", "add", name, "--json", database_url=database_url))
    return Enrolment(out["device_id"], out["token"])


def enrol_many(names: Sequence[str], database_url: str) -> list[Enrolment]:
    """Enrol many devices in one process (a command per device takes ~1 s each)."""
    from server_sync import add_device, create_app
    from server_sync.extension import server_state

    app = create_app({"DATABASE_URL": database_url})
    engine = server_state(app).engine
    try:
        with engine.begin() as conn:
            return [Enrolment(*add_device(conn, name)) for name in names]
    finally:
        engine.dispose()


def wait_ready(
    url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``url/healthz`` until it answers 200; raise if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout} s")


@contextmanager
def server_process(
    database_url: str,
    port: int | None = None,
    log: Path | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[LiveServer]:
    """Run ``fieldsync-server serve [EXTRA_ARGS]`` on 127.0.0.1 until the block ends."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "server_sync.cli", "serve", "--host", HOST, "--port", str(port)]
    cmd += extra_args
    env = {**os.environ, "FIELDSYNC_DATABASE_URL": database_url}
    # Without a log of the caller's, the output still goes to a file: a server that
    # dies before it is ready must say why.
    with contextlib.ExitStack() as files:
        out = cast(
            IO[bytes],
            files.enter_context(
                log.open("ab") if log is not None else tempfile.TemporaryFile()  # noqa: SIM115
            ),
        )
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://{HOST}:{port}"
        try:
            try:
                wait_ready(url, proc=proc)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{exc}\n--- server output ---\n{_tail(out)}") from exc
            yield LiveServer(url, database_url)
        finally:
            stop(proc)


def _tail(out: IO[bytes], most: int = 8_000) -> str:
    """The last ``most`` bytes a child wrote to ``out``, as text."""
    out.flush()
    out.seek(0, os.SEEK_END)
    out.seek(max(0, out.tell() - most))
    return out.read().decode("utf-8", "replace")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a child process, killing it if it does not exit in ``timeout`` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
