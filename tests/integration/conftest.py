"""Fixtures for tests that run real server and device processes on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulations.procs import LiveServer, server_cli, server_process


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real server process on embedded SQLite in ``tmp_path``."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    server_cli("db", "upgrade", database_url=url)
    with server_process(url, log=tmp_path / "server.log") as server:
        yield server


@pytest.fixture
def raw_key() -> bytes:
    """A fresh raw 256-bit outbox key."""
    return os.urandom(32)
