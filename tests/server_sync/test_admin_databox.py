"""The fleet data box: each device's latest summary, stuck entries by reason and age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from protocol.model import Databox, ParkedEntry
from server_sync import add_device
from server_sync.databox import MAX_AGE_S, fleet_databox, reason_totals, store_databox
from tests.server_sync.admin_helpers import (
    admin_client,
    databox_of,
    parked,
)
from tests.server_sync.conftest import Wire, error_of

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _device(engine: sa.Engine) -> str:
    with engine.begin() as conn:
        return add_device(conn, "phone")[0]


def _box(*entries: ParkedEntry, **reasons: int) -> Databox:
    counts = {"pending": 3, "in_flight": 0, "parked": sum(reasons.values())}
    return databox_of(parked=entries, counts=counts, reasons=reasons)


def test_the_latest_summary_replaces_the_one_before(any_db: sa.Engine) -> None:
    one, two = _device(any_db), _device(any_db)
    with any_db.begin() as conn:
        store_databox(
            conn,
            one,
            _box(parked("a", age_s=600), parked("b"), too_long=2),
            T0,
            sent_ms=1,
        )
        store_databox(
            conn,
            two,
            _box(parked("c", code="invalid_value", age_s=7200), invalid_value=5),
            T0,
            sent_ms=1,
        )
    with any_db.begin() as conn:  # device one fixed "a"; "b" is still parked, a minute older
        store_databox(conn, one, _box(parked("b", age_s=120), too_long=1), T0, sent_ms=2)
    with any_db.connect() as conn:
        stuck = fleet_databox(conn, limit=10, now=T0)
        totals = reason_totals(conn)
    assert [(e.device_id, e.op_id, e.age_s) for e in stuck] == [(two, "c", 7200), (one, "b", 120)]
    assert stuck[0].parked_at == T0 - timedelta(hours=2)
    assert [(t.reason, t.parked, t.devices) for t in totals] == [
        ("invalid_value", 5, 1),
        ("too_long", 1, 1),
    ]


def test_an_older_report_changes_nothing(any_db: sa.Engine) -> None:
    device = _device(any_db)
    with any_db.begin() as conn:
        assert store_databox(conn, device, _box(too_long=0), T0, sent_ms=20)
        assert not store_databox(conn, device, _box(parked("old"), too_long=1), T0, sent_ms=10)
        assert store_databox(conn, device, _box(parked("same")), T0, sent_ms=20)
    with any_db.connect() as conn:
        assert [e.op_id for e in fleet_databox(conn, limit=10)] == ["same"]
        assert reason_totals(conn) == []


def test_filters_by_code_device_and_age_and_pages(any_db: sa.Engine) -> None:
    one, two = _device(any_db), _device(any_db)
    with any_db.begin() as conn:
        store_databox(
            conn,
            one,
            _box(*(parked(f"a{i}", age_s=100 * i) for i in range(1, 6)), too_long=5),
            T0,
        )
        store_databox(
            conn,
            two,
            _box(parked("b", code="invalid_value", age_s=50), invalid_value=1),
            T0,
        )
    with any_db.connect() as conn:

        def ids(**kw: Any) -> list[str]:
            return [e.op_id for e in fleet_databox(conn, now=T0, **{"limit": 10, **kw})]

        assert ids() == ["a5", "a4", "a3", "a2", "a1", "b"]
        assert ids(code="invalid_value") == ["b"]
        assert ids(device_id=two) == ["b"]
        assert ids(min_age_s=300) == ["a5", "a4", "a3"]
        assert ids(min_age_s=MAX_AGE_S) == []
        assert ids(limit=2, offset=2) == ["a3", "a2"]


def test_absurd_ages_stay_in_range(any_db: sa.Engine) -> None:
    device = _device(any_db)
    with any_db.begin() as conn:
        store_databox(conn, device, _box(parked("x", age_s=2**62)), T0)
    with any_db.connect() as conn:
        (entry,) = fleet_databox(conn, limit=1, now=T0)
    assert entry.age_s == 2**62
    assert entry.parked_at == T0 - timedelta(seconds=MAX_AGE_S)


def test_get_databox_over_http(app: Flask, wire: Wire, engine: sa.Engine) -> None:
    reported = datetime.now(UTC) - timedelta(seconds=30)
    with engine.begin() as conn:
        store_databox(conn, wire.device_id, _box(parked("op-7", age_s=90), too_long=1), reported)
    page = admin_client(app, "viewer").get("/v1/admin/databox?code=too_long&min_age_s=60").json
    assert page is not None
    assert page["reasons"] == [{"reason": "too_long", "parked": 1, "devices": 1}]
    (entry,) = page["entries"]
    assert entry["device_id"] == wire.device_id and entry["op_id"] == "op-7"
    assert entry["reported_age_s"] == 90
    assert 120 <= entry["age_s"] < 90 + 30 + 3600  # its age now: reported age + time since
    assert page["next_offset"] is None
    full = admin_client(app, "viewer", "v2").get("/v1/admin/databox?limit=1").json
    assert full is not None and full["next_offset"] == 1


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "offset=-1",
        "offset=1000001",
        "min_age_s=%EF%BC%91",  # fullwidth one
        f"min_age_s={MAX_AGE_S + 1}",
        "code=",
        "code=a%01",
        "code=" + "c" * 65,
        "device_id=%00",
        "code=a&code=b",
        "sort=age",
    ],
)
def test_bad_databox_queries_are_400(app: Flask, query: str) -> None:
    answer = admin_client(app, "viewer").get(f"/v1/admin/databox?{query}")
    assert answer.status_code == 400, answer.json
    assert error_of(answer)["code"] == "invalid_request"


def test_hostile_counts_do_not_overflow_the_fleet_totals(any_db: sa.Engine) -> None:
    devices = [_device(any_db) for _ in range(3)]
    with any_db.begin() as conn:
        for device in devices:
            huge = databox_of(
                counts={"pending": 2**63 - 1, "parked": 2**63 - 1}, reasons={"too_long": 2**63 - 1}
            )
            store_databox(conn, device, huge, T0)
    with any_db.connect() as conn:
        (total,) = reason_totals(conn)
    assert (total.reason, total.parked, total.devices) == ("too_long", 3 * 2**40, 3)
