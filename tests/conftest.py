"""Fixtures shared by every test: leak guards and the optional PostgreSQL URL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

PG_ENV = "FIELDSYNC_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread of its own running."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads leaked: {still}"


@pytest.fixture
def pg_url() -> str:
    """A PostgreSQL SQLAlchemy URL for tests whose guarantee is about PostgreSQL."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} not set: PostgreSQL tests skipped")
    return url
