"""Load shedding: 429 + Retry-After over the limit, counted in the database, so shared."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask

from protocol import compress, encode_batch
from server_sync import add_device, create_app, create_engine, upgrade
from server_sync.cli import main
from server_sync.errors import RateLimited
from server_sync.extension import server_state
from server_sync.models import rate_windows
from server_sync.ratelimit import RateLimit, admit
from simulations.procs import free_port
from tests.server_sync.conftest import PYTHON, ServerProcess, Wire, error_of, rows


@pytest.fixture
def db(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(sqlite_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def try_admit(engine: sa.Engine, device: str, limit: RateLimit, now: float) -> int | None:
    """Admit one batch the way the view does; return the Retry-After if refused."""
    try:
        with engine.begin() as conn:
            admit(conn, device, limit, now)
    except RateLimited as exc:
        return exc.retry_after
    return None


def test_a_device_over_its_limit_is_told_when_its_window_ends(db: sa.Engine) -> None:
    limit = RateLimit(per_device=2, window=10.0)
    assert try_admit(db, "a", limit, 100.0) is None
    assert try_admit(db, "a", limit, 101.0) is None
    assert try_admit(db, "a", limit, 102.0) == 8
    assert try_admit(db, "a", limit, 109.5) == 1  # never 0: a client must wait
    assert try_admit(db, "b", limit, 109.5) is None  # another device has its own count
    assert try_admit(db, "a", limit, 110.0) is None  # a new window


def test_the_total_limit_spans_devices_and_a_refusal_uses_nothing(db: sa.Engine) -> None:
    limit = RateLimit(per_device=5, total=3, window=60.0)
    assert [try_admit(db, d, limit, 0.5) for d in "abc"] == [None, None, None]
    assert try_admit(db, "d", limit, 1.0) == 59
    with db.connect() as conn:
        counts = dict(conn.execute(sa.select(rate_windows.c.scope, rate_windows.c.count)).all())
    assert counts == {"*": 3, "device:a": 1, "device:b": 1, "device:c": 1}


def test_old_windows_are_pruned(db: sa.Engine) -> None:
    limit = RateLimit(total=100, window=1.0)
    for now in (0.0, 1.0, 2.0, 3.0, 10.0):
        try_admit(db, "a", limit, now)
    with db.connect() as conn:
        windows = sorted(conn.execute(sa.select(rate_windows.c.window)).scalars())
    assert windows == [10]


@pytest.mark.parametrize(
    "limit",
    [RateLimit(per_device=100, window=1.0), RateLimit(per_device=100, total=100, window=1.0)],
    ids=["device-only", "device-and-total"],
)
def test_old_windows_are_pruned_whichever_limits_are_set(db: sa.Engine, limit: RateLimit) -> None:
    for now in (0.0, 1.0, 2.0, 3.0, 4.0, 10.0):
        try_admit(db, "a", limit, now)
    with db.connect() as conn:
        kept = sorted(conn.execute(sa.select(rate_windows.c.scope, rate_windows.c.window)).all())
    assert [w for scope, w in kept if scope == "device:a"] == [10]


def test_no_limit_configured_writes_nothing(db: sa.Engine) -> None:
    for now in range(20):
        assert try_admit(db, "a", RateLimit(), float(now)) is None
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rate_windows)).scalar() == 0


@pytest.mark.parametrize("bad", [{"window": 0}, {"per_device": 0}, {"total": -1}])
def test_nonsense_limits_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RateLimit(**bad)  # type: ignore[arg-type]


@pytest.fixture
def limited(sqlite_url: str) -> Iterator[Flask]:
    app = create_app(
        {"DATABASE_URL": sqlite_url, "RATE_LIMIT_DEVICE": 2, "RATE_LIMIT_WINDOW": 3600}
    )
    yield app
    server_state(app).engine.dispose()


def _wire(app: Flask) -> Wire:
    with server_state(app).engine.begin() as conn:
        device_id, token = add_device(conn, "phone")
    return Wire(app.test_client(), device_id, token)


def test_http_429_with_retry_after_and_nothing_written(limited: Flask) -> None:
    wire, other = _wire(limited), _wire(limited)
    for seq in (1, 2):
        wire.ack(wire.batch(wire.entry(seq, tx=f"t{seq}")))
    engine = server_state(limited).engine
    before = rows(engine)

    response = wire.post(wire.batch(wire.entry(3, tx="t3")))

    assert response.status_code == 429
    error = error_of(response)
    assert error["code"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 3600
    assert error["details"]["retry_after"] == retry_after
    assert rows(engine) == before
    other.ack(other.batch(other.entry(1)))  # other devices are not shed


def test_limits_come_from_the_environment_when_config_is_silent(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIELDSYNC_RATE_LIMIT_TOTAL", "7")
    monkeypatch.setenv("FIELDSYNC_RATE_LIMIT_WINDOW", "2.5")
    app = create_app({"DATABASE_URL": sqlite_url})
    try:
        assert server_state(app).rate_limit == RateLimit(total=7, window=2.5)
    finally:
        server_state(app).engine.dispose()
    with pytest.raises(ValueError, match="RATE_LIMIT_DEVICE must be a number"):
        create_app({"DATABASE_URL": sqlite_url, "RATE_LIMIT_DEVICE": "lots"})


def test_serve_refuses_a_zero_limit() -> None:
    result = CliRunner().invoke(main, ["serve", "--rate-limit-device", "0"])
    assert result.exit_code == 2
    assert "--rate-limit-device" in result.output


def _two_servers(url: str, spawn: object) -> list[ServerProcess]:
    servers = []
    for _ in range(2):
        port = free_port()
        argv = [
            PYTHON, "-m", "server_sync.cli", "serve", "--port", str(port),
            "--rate-limit-device", "3", "--rate-limit-window", "3600", "--database-url", url,
        ]  # fmt: skip
        servers.append(spawn(argv, {}, port))  # type: ignore[operator]
    return servers


def _shared_limit_holds(url: str, spawn: object) -> None:
    engine = create_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            device_id, token = add_device(conn, "phone")
    finally:
        engine.dispose()
    a, b = _two_servers(url, spawn)
    wire = Wire(None, device_id, token)  # type: ignore[arg-type]
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    codes = []
    for seq, server in enumerate([a, b, a, b], start=1):
        body = compress(encode_batch(wire.batch(wire.entry(seq, tx=f"t{seq}"))))
        answer = httpx.post(f"{server.base_url}/v1/batches", content=body, headers=headers)
        codes.append(answer.status_code)
    assert codes == [200, 200, 200, 429]
    assert math.isfinite(float(answer.headers["Retry-After"]))


@pytest.mark.slow
def test_the_limit_is_shared_by_server_processes_on_sqlite(sqlite_url: str, spawn: object) -> None:
    _shared_limit_holds(sqlite_url, spawn)


@pytest.mark.slow
@pytest.mark.postgres
def test_the_limit_is_shared_by_server_processes_on_postgres(
    pg_schema_url: str, spawn: object
) -> None:
    _shared_limit_holds(pg_schema_url, spawn)
