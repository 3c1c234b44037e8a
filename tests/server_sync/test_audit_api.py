"""The audit endpoints through the real app: devices post reports over HTTP, an admin
reads the fleet, one device's audit and its journal; hostile queries get a clear 400."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from protocol import Batch, compress, decode_ack, encode_batch
from server_sync import create_app
from server_sync.db import current_revision
from server_sync.extension import server_state
from server_sync.models import device_status, devices, journal_events

from .audit_helpers import Device, M, admin_token, audit_app, count, enrol
from .conftest import Wire, database_at, error_of, migrate

HOUR = 60 * M


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """The real app on each database."""
    with audit_app(tmp_path, request, request.param) as app:
        yield app


class Admin:
    """GETs with an admin token."""

    def __init__(self, app: Flask, token: str) -> None:
        self.client = app.test_client()
        self.token = token

    def get(self, path: str, **query: Any) -> TestResponse:
        return self.client.get(
            path, query_string=query, headers={"Authorization": f"Bearer {self.token}"}
        )

    def ok(self, path: str, **query: Any) -> Any:
        response = self.get(path, **query)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json


@pytest.fixture
def admin(app: Flask) -> Admin:
    return Admin(app, admin_token(app, "viewer"))


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str, str]]:
    """One app for the whole fuzz run: (app, admin token, a device with a journal)."""
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True})
    device_id, token = enrol(app)
    post(app.test_client(), token, a_bad_afternoon(Device(device_id), now_ms()))
    yield app, admin_token(app), device_id
    server_state(app).engine.dispose()


def post(client: FlaskClient, token: str, batch: Batch) -> None:
    """POST a batch as the device does (gzip); it must be answered 200."""
    response = client.post(
        "/v1/batches",
        data=compress(encode_batch(batch)),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    decode_ack(response.get_data())


def now_ms() -> int:
    return int(time.time() * 1000)


def a_bad_afternoon(device: Device, t: int) -> Batch:
    """Server times relative to ``t``: wifi up at -4 h, down -3 h to -2 h, a failed and a
    good attempt, then a status; the report is assembled at ``t``."""
    return device.batch(
        t,
        [
            device.link(t - 4 * HOUR, True),
            device.link(t - 3 * HOUR, False),
            device.attempt(t - 150 * M, "dns_failure"),
            device.link(t - 2 * HOUR, True),
            device.attempt(t - 100 * M, entries=7),
            device.status(t - 90 * M, queue_depth=3),
            device.discard(t - 80 * M, "op-1"),
        ],
        parked_ages=(7200,),
    )


def test_a_devices_report_shows_in_its_audit_corrected_for_skew(app: Flask, admin: Admin) -> None:
    device_id, token = enrol(app)
    device = Device(device_id, ahead_ms=-2 * HOUR)  # two hours behind
    start = now_ms()
    post(app.test_client(), token, a_bad_afternoon(device, start))
    audit = admin.ok(f"/v1/admin/devices/{device_id}/audit", window="5h", end_ms=start)
    assert audit["offline_periods"] == [
        {"start_ms": start - 3 * HOUR, "end_ms": start - 2 * HOUR, "ms": HOUR, "open": False}
    ]
    assert (audit["offline_ms"], audit["online_ms"], audit["unknown_ms"]) == (
        HOUR,
        3 * HOUR,
        HOUR,  # the hour before the first event
    )
    assert audit["attempts"]["by_outcome"] == {"dns_failure": 1, "ok": 1}
    assert (audit["attempts"]["failure_rate"], audit["attempts"]["entries_sent"]) == (0.5, 7)
    assert (audit["discarded"], audit["parked"], audit["queue_depth"]) == (1, 1, 3)
    assert audit["clock_offset_ms"] == 2 * HOUR
    assert (audit["app_version"], audit["protocol_version"]) == ("3.2.0", "2.1")
    default = admin.ok(f"/v1/admin/devices/{device_id}/audit")  # the last 72 hours
    assert default["end_ms"] - default["start_ms"] == 72 * HOUR
    assert default["offline_ms"] == HOUR


def test_a_report_posted_twice_is_stored_once(app: Flask, admin: Admin) -> None:
    device_id, token = enrol(app)
    device = Device(device_id)
    start = now_ms()
    batch = a_bad_afternoon(device, start)
    client = app.test_client()
    post(client, token, batch)
    first = admin.ok(f"/v1/admin/devices/{device_id}/audit", window="5h", end_ms=start)
    post(client, token, batch)
    post(client, token, Batch("2.1", "another-id", device_id, (), batch.report))
    again = admin.ok(f"/v1/admin/devices/{device_id}/audit", window="5h", end_ms=start)
    assert count(app, journal_events) == 7
    for seen in ("last_seen_ms", "last_sync_ms"):  # the replays did reach the server
        assert again.pop(seen) > first.pop(seen)
    assert again == first


def _fleet_of_three(app: Flask) -> dict[str, str]:
    """Three devices: one offline an hour with a deep queue, one failing, one never seen."""
    client = app.test_client()
    t = now_ms()
    names = {}
    offline_id, token = enrol(app, "offline")
    post(client, token, a_bad_afternoon(Device(offline_id), t))
    failing_id, token = enrol(app, "failing")
    failing = Device(failing_id)
    post(
        client,
        token,
        failing.batch(
            t,
            [
                failing.link(t - HOUR, True),
                *(failing.attempt(t - i * M, "timeout") for i in range(1, 4)),
                failing.status(t - 30 * M, queue_depth=40),
            ],
            parked_ages=(60,),
        ),
    )
    silent_id, _ = enrol(app, "silent")
    names.update(offline=offline_id, failing=failing_id, silent=silent_id)
    return names


def _ids(page: Any) -> list[str]:
    return [row["device_id"] for row in page["devices"]]


def test_the_fleet_sorts_and_filters(app: Flask, admin: Admin) -> None:
    ids = _fleet_of_three(app)
    fleet = "/v1/admin/devices"
    assert _ids(admin.ok(fleet))[0] == ids["offline"]  # most offline
    assert _ids(admin.ok(fleet, sort="failure_rate"))[0] == ids["failing"]
    assert _ids(admin.ok(fleet, sort="queue_depth"))[:2] == [ids["failing"], ids["offline"]]
    assert _ids(admin.ok(fleet, sort="oldest_parked")) == [ids["offline"], ids["failing"]]
    assert _ids(admin.ok(fleet, sort="not_seen"))[0] == ids["silent"]
    assert _ids(admin.ok(fleet, not_seen_hours="1")) == [ids["silent"]]
    row = admin.ok(fleet, sort="failure_rate")["devices"][0]
    assert (row["attempts"], row["failed"], row["failure_rate"]) == (3, 3, 1.0)
    assert (row["queue_depth"], row["parked"], row["name"]) == (40, 1, "failing")
    silent = admin.ok(fleet, not_seen_hours="1")["devices"][0]
    assert (silent["last_seen_ms"], silent["queue_depth"], silent["failure_rate"]) == (
        None,
        None,
        None,
    )


def test_the_fleet_pages_by_cursor_without_gaps_or_repeats(app: Flask, admin: Admin) -> None:
    ids = _fleet_of_three(app)
    for sort in ("offline", "failure_rate", "not_seen", "queue_depth"):
        seen: list[str] = []
        cursor = None
        for _ in range(4):
            query = {"sort": sort, "limit": "1", **({"cursor": cursor} if cursor else {})}
            page = admin.ok("/v1/admin/devices", **query)
            seen += _ids(page)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids.values()), sort
        assert seen == _ids(admin.ok("/v1/admin/devices", sort=sort))


def test_the_journal_pages_in_server_time_order(app: Flask, admin: Admin) -> None:
    device_id, token = enrol(app)
    post(app.test_client(), token, a_bad_afternoon(Device(device_id, ahead_ms=HOUR), now_ms()))
    path = f"/v1/admin/devices/{device_id}/events"
    first = admin.ok(path, limit="4")
    second = admin.ok(path, limit="4", after=first["next_after"])
    events = first["events"] + second["events"]
    assert [e["event_id"] for e in events] == [f"ev-{i}" for i in range(1, 8)]
    assert second["next_after"] is None
    assert all(e["at_server_ms"] == e["at_ms"] - HOUR for e in events)
    assert events[0]["event"] == {
        "id": "ev-1",
        "at_ms": events[0]["at_ms"],
        "kind": "link",
        "channel": "wifi",
        "up": True,
        "source": "os",
    }
    links = admin.ok(path, kind="link")["events"]
    assert [e["kind"] for e in links] == ["link"] * 3


def test_only_admin_credentials_read_the_audit(app: Flask) -> None:
    device_id, token = enrol(app)
    client = app.test_client()
    for path in ("/v1/admin/devices", f"/v1/admin/devices/{device_id}/audit"):
        assert error_of(client.get(path))["code"] == "admin_unauthorized"
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert (response.status_code, error_of(response)["code"]) == (403, "device_token")
        response = client.get(path, headers={"Authorization": "Bearer fsa_nobody"})
        assert response.status_code == 401


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ({"window": "٧٢h"}, "window"),  # Arabic-Indic digits: int() would take them
        ({"window": "７２h"}, "window"),  # full-width digits
        ({"window": "72H"}, "window"),
        ({"window": "0h"}, "window"),
        ({"window": "721h"}, "window"),
        ({"window": "31d"}, "window"),
        ({"window": "99999999999999999999h"}, "window"),
        ({"window": "72h\x00"}, "window"),
        ({"window": "-1h"}, "window"),
        ({"window": " 72h"}, "window"),
        ({"window": "72"}, "window"),
        ({"end_ms": "１２"}, "end_ms"),
        ({"end_ms": "1e12"}, "end_ms"),
        ({"end_ms": "9" * 30}, "end_ms"),
        ({"end_ms": str(2**63)}, "end_ms"),
        ({"end_ms": "99999999999999"}, "end_ms"),  # in the future
        ({"end_ms": "1000"}, "end_ms"),  # before the retention
        ({"since": "1h"}, "since"),
    ],
)
def test_hostile_audit_queries_get_a_clear_400(
    app: Flask, admin: Admin, query: dict[str, str], where: str
) -> None:
    device_id, _ = enrol(app)
    response = admin.get(f"/v1/admin/devices/{device_id}/audit", **query)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert where in error["details"]


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "١٠"}, "limit"),
        ({"limit": "10_0"}, "limit"),
        ({"sort": "name"}, "sort"),
        ({"not_seen_hours": "²"}, "not_seen_hours"),
        ({"not_seen_hours": "9999999"}, "not_seen_hours"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "1.\x00"}, "cursor"),
        ({"cursor": "99999999999999999999.x"}, "cursor"),
        ({"cursor": "1." + "x" * 65}, "cursor"),
        ({"cursor": "9223372036854775808.x"}, "cursor"),
    ],
)
def test_hostile_fleet_queries_get_a_clear_400(
    app: Flask, admin: Admin, query: dict[str, str], where: str
) -> None:
    response = admin.get("/v1/admin/devices", **query)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert where in error_of(response)["details"]


def test_repeated_and_overlong_queries_and_odd_ids_are_refused(app: Flask, admin: Admin) -> None:
    device_id, _ = enrol(app)
    headers = {"Authorization": f"Bearer {admin.token}"}
    response = admin.client.get(
        f"/v1/admin/devices/{device_id}/audit?window=1h&window=2h", headers=headers
    )
    assert response.status_code == 400 and "window" in error_of(response)["details"]
    for raw in ("window=%ED%A0%80", "window=%00", "%ED%A0%80=1", "window=72h&%00=1"):
        response = admin.client.get(f"/v1/admin/devices/{device_id}/audit?{raw}", headers=headers)
        assert response.status_code == 400, raw
    response = admin.client.get("/v1/admin/devices?sort=" + "x" * 600, headers=headers)
    assert response.status_code == 400
    for odd in ("x" * 65, "%00", "%ED%A0%80", "nobody"):
        for tail in ("audit", "events"):
            response = admin.client.get(f"/v1/admin/devices/{odd}/{tail}", headers=headers)
            assert (response.status_code, error_of(response)["code"]) == (404, "unknown_device")
    for after in ("1", "1.x", "١.١", "1." + "9" * 20, "9" * 19 + ".1", "1." + "9" * 19):
        response = admin.get(f"/v1/admin/devices/{device_id}/events", after=after)
        assert response.status_code == 400 and "after" in error_of(response)["details"]


def test_the_migration_gives_every_enrolled_device_a_status_row(tmp_path: Path) -> None:
    with database_at("0004", sqlite=tmp_path / "m.db") as engine:
        with engine.begin() as conn:
            conn.execute(
                devices.insert().values(
                    id="old", name="old phone", token_hash="0" * 64, created_at=sa.func.now()
                )
            )
        migrate(engine, "0005")
        assert current_revision(engine) == "0005"
        with engine.connect() as conn:
            rows = conn.execute(sa.select(device_status.c.device_id, device_status.c.last_seen_ms))
            assert [tuple(r) for r in rows] == [("old", 0)]


def test_a_report_refused_with_its_batch_leaves_nothing(app: Flask) -> None:
    device_id, token = enrol(app)
    device = Device(device_id)
    batch = a_bad_afternoon(device, now_ms())
    wrong = Batch("2.1", "b-x", "someone-else", (), batch.report)  # sent as another device
    response = app.test_client().post(
        "/v1/batches",
        data=encode_batch(wrong),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 403
    assert count(app, journal_events) == 0
    with server_state(app).engine.connect() as conn:
        seen = conn.execute(
            sa.select(device_status.c.last_seen_ms).where(device_status.c.device_id == device_id)
        ).scalar()
    assert seen == 0


_PARAMS = ["window", "end_ms", "sort", "limit", "cursor", "not_seen_hours", "after", "kind"]
_values = st.text(max_size=24) | st.sampled_from(
    ["72h", "3d", "1", "0", "١", "²", "1.x", "9" * 25, "-1", "1e3", "\x00", "link", "offline"]
)


@settings(max_examples=150, derandomize=True, deadline=None, database=None)
@given(
    st.sampled_from(["", "/audit", "/events"]),
    st.dictionaries(st.sampled_from(_PARAMS) | st.text(max_size=6), _values, max_size=3),
)
def test_any_query_is_answered_200_or_a_clear_400(
    fuzz_app: tuple[Flask, str, str], tail: str, query: dict[str, str]
) -> None:
    app, token, device_id = fuzz_app
    path = "/v1/admin/devices" + (f"/{device_id}{tail}" if tail else "")
    try:
        encoded = urlencode(query).encode("utf-8").decode("ascii")
    except UnicodeEncodeError:
        return  # a lone surrogate cannot even be sent: the raw cases are tested above
    response = app.test_client().get(
        path, query_string=encoded, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        assert error_of(response)["code"] == "invalid_request"


def test_entries_the_server_recorded_count_in_the_window(app: Flask, admin: Admin) -> None:
    device_id, token = enrol(app)
    device = Device(device_id)
    start = now_ms()
    report = a_bad_afternoon(device, start).report
    wire = Wire(app.test_client(), device_id, token)
    batch = wire.batch(wire.entry(1, "t1"), wire.entry(2, "t1", record_id="c2"))
    post(app.test_client(), token, Batch("2.1", batch.batch_id, device_id, batch.entries, report))
    audit = admin.ok(f"/v1/admin/devices/{device_id}/audit", window="1h")
    assert audit["entries_recorded"] == 2
    before = admin.ok(f"/v1/admin/devices/{device_id}/audit", window="1h", end_ms=start - 1)
    assert before["entries_recorded"] == 0
