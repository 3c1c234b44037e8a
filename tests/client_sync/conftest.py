"""Fixtures for client_sync tests: real SQLCipher files in tmp_path, recorded sleeps."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from client_sync import OutboxConfig, RetryPolicy, SyncClient
from client_sync.testing import FakeClock, FakeServer

KEY = bytes(range(32))


@pytest.fixture
def key() -> bytes:
    return KEY


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(db_path: Path, sleeps: list[float]) -> Iterator[Callable[..., SyncClient]]:
    """Build SyncClients (default: on ``db_path``, recording sleeps); close them after."""
    made: list[SyncClient] = []

    def make(channels: list[Any], **kw: Any) -> SyncClient:
        kw.setdefault("device_id", "dev-1")
        kw.setdefault("sleep", sleeps.append)
        kw.setdefault("clock", FakeClock())
        kw.setdefault("rng", random.Random(1234))
        kw.setdefault("retry", RetryPolicy())
        kw.setdefault("config", OutboxConfig())
        client = SyncClient(kw.pop("path", db_path), kw.pop("key", KEY), channels=channels, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
