"""Fixtures for client_sync tests: real SQLCipher files and the real server in tmp_path.

Every answer a client sees comes from the real ``create_app()`` (tests/_doubles.py);
link failures are scripted in front of it; sleeps are recorded, never waited.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from client_sync import OutboxConfig, RetryPolicy, SyncClient
from tests._doubles import Enrolled, FakeClock, RealServer, ScriptedChannel, Step, lenient_registry

KEY = bytes(range(32))

#: link(name="wifi", *, metered=False, script=None, forever=None) -> ScriptedChannel
Link = Callable[..., ScriptedChannel]


@pytest.fixture
def key() -> bytes:
    return KEY


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RealServer]:
    """The real sync server on a SQLite file in tmp_path."""
    real = RealServer(tmp_path / "server.db")
    yield real
    real.close()


@pytest.fixture
def device(server: RealServer) -> Enrolled:
    """A device enrolled on ``server``; ``make_client`` and ``link`` act as it."""
    return server.enrol()


@pytest.fixture
def link(server: RealServer, device: Enrolled) -> Link:
    """Make scripted links to the real server for ``device``."""

    def make(
        name: str = "wifi",
        *,
        metered: bool = False,
        script: list[Step] | None = None,
        forever: Step | None = None,
    ) -> ScriptedChannel:
        inner = server.channel(device, name, metered=metered)
        return ScriptedChannel(inner, script=script, forever=forever)

    return make


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(
    db_path: Path, sleeps: list[float], device: Enrolled
) -> Iterator[Callable[..., SyncClient]]:
    """Build SyncClients (default: ``device`` on ``db_path``, recording sleeps); close after."""
    made: list[SyncClient] = []

    def make(channels: list[Any], **kw: Any) -> SyncClient:
        kw.setdefault("device_id", device.device_id)
        kw.setdefault("sleep", sleeps.append)
        kw.setdefault("clock", FakeClock())
        kw.setdefault("rng", random.Random(1234))
        kw.setdefault("retry", RetryPolicy())
        kw.setdefault("config", OutboxConfig())
        kw.setdefault("registry", lenient_registry())
        client = SyncClient(kw.pop("path", db_path), kw.pop("key", KEY), channels=channels, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
