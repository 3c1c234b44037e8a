"""Benchmark server processes on 127.0.0.1 and a byte- and connection-counting transport."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from simulations.procs import HOST, free_port, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent


class CountingTransport(httpx.BaseTransport):
    """An HTTP transport that counts bytes (lines, headers, bodies) and TCP connections opened."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport(retries=0)
        self.sent = 0
        self.received = 0
        self.connections = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through a real transport, counting both directions."""
        request.extensions = {**request.extensions, "trace": self._trace}
        body = request.read()
        self.sent += len(body) + len(request.method) + len(request.url.raw_path) + 12
        self.sent += sum(len(k) + len(v) + 4 for k, v in request.headers.raw)
        response = self._inner.handle_request(request)
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
        self.received += len(raw) + 17 + len(response.reason_phrase)
        self.received += sum(len(k) + len(v) + 4 for k, v in response.headers.raw)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=raw,
            extensions=response.extensions,
        )

    def close(self) -> None:
        """Close the real transport."""
        self._inner.close()

    def _trace(self, event: str, _info: dict[str, Any]) -> None:
        """httpcore's trace hook: one ``connect_tcp.complete`` per TCP connection opened."""
        if event == "connection.connect_tcp.complete":
            self.connections += 1


@contextmanager
def process(cmd: list[str], env: dict[str, str], url: str) -> Iterator[str]:
    """Run ``cmd`` (a server) until the block ends; yield its URL once /healthz answers."""
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(url, timeout=60, proc=proc)
        yield url
    finally:
        stop(proc)


@contextmanager
def fieldsync_server(database_url: str) -> Iterator[str]:
    """``fieldsync-server serve`` (waitress, keep-alive) on a free port."""
    port = free_port()
    cmd = [sys.executable, "-m", "server_sync.cli", "serve", "--host", HOST, "--port", str(port)]
    with process(cmd, {"FIELDSYNC_DATABASE_URL": database_url}, f"http://{HOST}:{port}") as url:
        yield url


@contextmanager
def naive_server(db_path: Path) -> Iterator[str]:
    """The naive endpoint (waitress, like ours) on a free port."""
    port = free_port()
    cmd = [sys.executable, "-m", "benchmarks.naive", "--port", str(port), "--db", str(db_path)]
    with process(cmd, {}, f"http://{HOST}:{port}") as url:
        yield url


@contextmanager
def gunicorn(app: str, workers: int, env: dict[str, str]) -> Iterator[str]:
    """``gunicorn -w N APP`` on a free port."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        str(workers),
        "-b",
        f"{HOST}:{port}",
        "--backlog",
        "2048",
        "--timeout",
        "120",
        app,
    ]
    with process(cmd, env, f"http://{HOST}:{port}") as url:
        yield url
