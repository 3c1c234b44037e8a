"""Fixtures shared by every test: Hypothesis profiles, leak guards, the PostgreSQL URL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

PG_ENV = "FIELDSYNC_TEST_POSTGRES_URL"

# "ci" (`make test`, or any run with CI set): the same examples every run, no deadline
# and no too_slow check, so a loaded machine changes the time a run takes, never its
# verdict. "dev" (plain pytest): fresh random examples and the failure database, still
# without a deadline. A test's own @settings bound its examples; 100 otherwise.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture(autouse=True, scope="session")
def _hypothesis_caches_built() -> None:
    """Build Hypothesis' unicode tables once, before any test's draws are timed.

    On a fresh checkout (no .hypothesis/ cache, as in CI) the first ``st.text()``
    draw builds them: 1-2 s charged to whichever test draws text first, which
    tripped its too_slow health check under load.
    """

    @settings(
        max_examples=1,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.text(min_size=1))
    def warm(text: str) -> None:
        pass

    warm()


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
