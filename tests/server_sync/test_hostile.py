"""Hostile input through the real app: a specific 4xx (or a per-entry rejection), never a
500, and nothing written. One test per input that got a 500 before (issue 7)."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from conflict import Hlc
from protocol import compress, encode_batch, to_wire
from protocol.constants import MAX_CLOCK_AHEAD_MS, MAX_WIRE_BYTES
from server_sync import add_device, create_app
from server_sync.extension import server_state
from server_sync.models import records
from server_sync.service import apply_batch, get_record

from .conftest import Wire, error_of, rows, stamp

NOW_MS = 1_700_000_000_000


def _raw(wire: Wire, **entry_over: Any) -> dict[str, Any]:
    """A valid one-entry batch as a plain dict, with entry members replaced."""
    raw = to_wire(wire.batch(wire.entry(1)))
    raw["entries"][0].update(entry_over)
    return raw


def _text(raw: dict[str, Any]) -> str:
    """JSON text with every non-ASCII character escaped (so lone surrogates survive)."""
    return json.dumps(raw, ensure_ascii=True)


def _post_text(wire: Wire, text: str) -> Any:
    return wire.post(gzip.compress(text.encode("ascii")))


def _refused(wire: Wire, engine: sa.Engine, body: str | bytes, status: int, code: str) -> Any:
    before = rows(engine)
    response = _post_text(wire, body) if isinstance(body, str) else wire.post(body)
    assert response.status_code == status, response.get_data(as_text=True)
    error = error_of(response)
    assert error["code"] == code
    assert rows(engine) == before
    return error


# -- strings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "member", ["op_id", "tx_id", "record_id", "collection", "hlc", "device_id"]
)
def test_a_lone_surrogate_in_an_id_is_400(wire: Wire, engine: sa.Engine, member: str) -> None:
    _refused(wire, engine, _text(_raw(wire, **{member: "c\ud800"})), 400, "malformed_batch")


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Zhang \ud800"},
        {"name": "ok", "notes": ["\udfff"]},
        {"\ud800": "x", "name": "ok"},
        {"name": "NUL\x00inside"},
    ],
)
def test_a_lone_surrogate_or_nul_in_any_field_string_is_400(
    wire: Wire, engine: sa.Engine, fields: dict[str, Any]
) -> None:
    _refused(wire, engine, _text(_raw(wire, fields=fields)), 400, "malformed_batch")


def test_a_lone_surrogate_in_the_batch_id_is_400(wire: Wire, engine: sa.Engine) -> None:
    raw = _raw(wire)
    raw["batch_id"] = "\ud800"
    _refused(wire, engine, _text(raw), 400, "malformed_batch")


@pytest.mark.parametrize("record_id", ["c\x00", "c\n1", "c\x7f", "c\x85"])
def test_control_characters_in_a_record_id_are_400(
    wire: Wire, engine: sa.Engine, record_id: str
) -> None:
    _refused(wire, engine, _text(_raw(wire, record_id=record_id)), 400, "malformed_batch")


# -- numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "value"), [("seq", 2**63), ("schema_version", 2**31), ("seq", 0)]
)
def test_numbers_out_of_their_declared_range_are_400(
    wire: Wire, engine: sa.Engine, member: str, value: int
) -> None:
    error = _refused(wire, engine, _text(_raw(wire, **{member: value})), 400, "malformed_batch")
    assert member in json.dumps(error["details"])


def test_schema_version_past_int32_with_an_unknown_collection_is_400(
    wire: Wire, engine: sa.Engine
) -> None:
    raw = _raw(wire, collection="nope", schema_version=2**31)
    _refused(wire, engine, _text(raw), 400, "malformed_batch")


@pytest.mark.parametrize(
    "literal", ["9" * 4301, "-" + "9" * 5000, "1e400", "-1e400", "1" + "0" * 40 + ".5"]
)
def test_huge_or_infinite_number_literals_are_400(
    wire: Wire, engine: sa.Engine, literal: str
) -> None:
    text = _text(_raw(wire, collection="leads", fields={"name": "x", "score": 1}))
    _refused(
        wire, engine, text.replace('"score": 1', f'"score": {literal}'), 400, "malformed_batch"
    )


@pytest.mark.parametrize(
    ("collection", "fields", "code", "field"),
    [
        ("opportunities", {"amount": "1e999999"}, "invalid_decimal", "amount"),
        ("opportunities", {"amount": str(10**300)}, "invalid_decimal", "amount"),
        ("opportunities", {"amount": "１２.５０"}, "invalid_decimal", "amount"),
        ("opportunities", {"amount": 10**18}, "invalid_decimal", "amount"),
        (
            "opportunities",
            {"close_date": "9999-12-31T23:59:59-14:00"},
            "out_of_range",
            "close_date",
        ),
        (
            "opportunities",
            {"close_date": "０００１-01-01T00:00:00Z"},
            "invalid_timestamp",
            "close_date",
        ),
        ("leads", {"name": "x", "score": 2**62}, "out_of_range", "score"),
        ("leads", {"name": "x", "phone": "1 " * 20_000}, "invalid_phone", "phone"),
    ],
)
def test_field_values_out_of_range_are_rejected_per_entry_and_write_nothing(
    wire: Wire,
    engine: sa.Engine,
    collection: str,
    fields: dict[str, Any],
    code: str,
    field: str,
) -> None:
    if collection == "opportunities":
        fields = {"customer_id": "c1", "title": "t", **fields}
    batch = wire.batch(wire.entry(1, collection=collection, record_id="r1", fields=fields))
    before = rows(engine)["records"]
    ack = wire.ack(batch)
    assert (ack.results[0].status, ack.results[0].code, ack.results[0].field) == (
        "rejected",
        code,
        field,
    )
    assert rows(engine)["records"] == before


# -- versions, JSON, gzip, body ------------------------------------------------------


@pytest.mark.parametrize("version", ["².0", "１.0", "1.٠", "1.0\n", "1.00000", "1", " 1.0"])
def test_a_protocol_version_not_in_ascii_major_minor_is_400(
    wire: Wire, engine: sa.Engine, version: str
) -> None:
    raw = _raw(wire)
    raw["protocol_version"] = version
    _refused(wire, engine, _text(raw), 400, "malformed_batch")


def test_duplicate_json_keys_are_400(wire: Wire, engine: sa.Engine) -> None:
    text = _text(_raw(wire))
    twice = text.replace('"kind": "upsert"', '"kind": "upsert", "kind": "delete"')
    assert twice != text
    error = _refused(wire, engine, twice, 400, "malformed_batch")
    assert "duplicate" in error["message"]


@pytest.mark.parametrize("trailer", [b"x", b"\x00" * 8, "second member"])
def test_bytes_after_the_gzip_member_are_400(
    wire: Wire, engine: sa.Engine, trailer: bytes | str
) -> None:
    body = compress(encode_batch(wire.batch(wire.entry(1))))
    extra = gzip.compress(b"{}") if isinstance(trailer, str) else trailer
    _refused(wire, engine, body + extra, 400, "malformed_batch")


def _post_chunked(wire: Wire, body: bytes, *, terminated: bool = True) -> Any:
    """POST ``body`` as a chunked request (no Content-Length).

    ``terminated``: the WSGI server ends the stream itself (``wsgi.input_terminated``),
    as gunicorn, waitress and werkzeug's server do for chunked requests.
    """
    return wire.client.post(
        "/v1/batches",
        input_stream=io.BytesIO(body),
        headers={
            "Authorization": f"Bearer {wire.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Transfer-Encoding": "chunked",
        },
        environ_overrides={"wsgi.input_terminated": True} if terminated else {},
    )


def test_a_chunked_body_over_the_limit_is_413(wire: Wire, engine: sa.Engine) -> None:
    before = rows(engine)
    response = _post_chunked(wire, b"x" * (MAX_WIRE_BYTES + 1))
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert rows(engine) == before


def test_a_chunked_body_within_the_limit_is_read_whole(wire: Wire) -> None:
    body = compress(encode_batch(wire.batch(wire.entry(1))))
    response = _post_chunked(wire, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json is not None
    assert response.json["results"][0]["status"] == "applied"


def test_a_chunked_body_the_server_cannot_end_is_411_not_an_empty_read(
    wire: Wire, engine: sa.Engine
) -> None:
    before = rows(engine)
    body = compress(encode_batch(wire.batch(wire.entry(1))))
    response = _post_chunked(wire, body, terminated=False)
    assert response.status_code == 411
    assert error_of(response)["code"] == "length_required"
    assert rows(engine) == before


# -- HLC stamps --------------------------------------------------------------------


@pytest.mark.parametrize(
    "hlc",
    [
        "９９９９９９９９９９９９９-00001-n1",  # full-width digits sorted after every ASCII stamp
        "٩٩٩٩٩٩٩٩٩٩٩٩٩-00001-n1",  # Arabic-Indic digits
        "1700000000000-0000²-n1",
        "1700000000000-00001-n1\n",
        "1700000000000-00001-n 1",
        "1700000000000-00001-" + "n" * 45,
    ],
)
def test_an_hlc_not_in_the_strict_ascii_form_is_400(
    wire: Wire, engine: sa.Engine, hlc: str
) -> None:
    _refused(wire, engine, _text(_raw(wire, hlc=hlc)), 400, "malformed_batch")


def test_stored_stamps_are_compared_as_numbers_not_as_text(wire: Wire, engine: sa.Engine) -> None:
    # A stored clock whose digits would win as text ("9" > "1") but whose numbers are
    # tiny: only a comparison of numbers lets the newer write through.
    with engine.begin() as conn:
        conn.execute(
            records.insert(),
            {
                "collection": "customers",
                "record_id": "c1",
                "doc_json": '{"name":"old"}',
                "clocks_json": '{"name":[9,99999,"zzzz"]}',
            },
        )
    wire.ack(wire.batch(wire.entry(1, fields={"name": "new"})))
    with engine.connect() as conn:
        assert get_record(conn, "customers", "c1") == {
            "name": "new",
            "phone": None,
            "email": None,
            "address": None,
            "notes": None,
        }


def test_a_stamp_too_far_ahead_rejects_its_transaction_and_writes_nothing(
    app: Flask, wire: Wire, engine: sa.Engine
) -> None:
    now = datetime.fromtimestamp(NOW_MS / 1000, UTC)
    ahead = str(Hlc(NOW_MS + MAX_CLOCK_AHEAD_MS + 1, 0, "n1"))
    edge = str(Hlc(NOW_MS + MAX_CLOCK_AHEAD_MS, 0, "n1"))
    batch = wire.batch(
        wire.entry(1, tx="t1", hlc=stamp(1)),
        wire.entry(2, tx="t1", hlc=ahead, record_id="c2"),
        wire.entry(3, tx="t2", hlc=edge, record_id="c3"),
    )
    with engine.begin() as conn:
        ack = apply_batch(conn, wire.device_id, batch, server_state(app).registry, now=now)
    assert [(r.status, r.code) for r in ack.results] == [
        ("rejected", "tx_rejected"),
        ("rejected", "clock_ahead"),
        ("applied", None),
    ]
    assert ack.results[1].field == "hlc"
    assert str(NOW_MS) in (ack.results[1].message or "")
    assert ack.server_time_ms == NOW_MS
    with engine.connect() as conn:
        assert get_record(conn, "customers", "c1") is None
        assert get_record(conn, "customers", "c2") is None
        assert get_record(conn, "customers", "c3") is not None


def test_every_ack_carries_the_servers_clock(wire: Wire) -> None:
    ack = wire.ack(wire.batch(wire.entry(1)))
    assert ack.server_time_ms is not None
    assert abs(ack.server_time_ms - datetime.now(UTC).timestamp() * 1000) < 3_600_000


# -- PostgreSQL --------------------------------------------------------------------


@pytest.fixture
def pg_wire(pg_schema_url: str) -> Iterator[tuple[Wire, sa.Engine]]:
    """A device talking to the real app on a fresh PostgreSQL schema."""
    app = create_app({"DATABASE_URL": pg_schema_url, "TESTING": True})
    engine = server_state(app).engine
    with engine.begin() as conn:
        device_id, token = add_device(conn, "rep phone")
    yield Wire(app.test_client(), device_id, token), engine
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "over",
    [
        {"record_id": "c\x00"},
        {"collection": "nope", "schema_version": 2**31},
        {"fields": {"name": "\ud800"}},
        {"seq": 2**63},
    ],
)
def test_postgres_refuses_what_it_cannot_store_with_400(
    pg_wire: tuple[Wire, sa.Engine], over: dict[str, Any]
) -> None:
    wire, engine = pg_wire
    _refused(wire, engine, _text(_raw(wire, **over)), 400, "malformed_batch")


@pytest.mark.postgres
def test_postgres_compares_stamps_as_numbers(pg_wire: tuple[Wire, sa.Engine]) -> None:
    wire, engine = pg_wire
    test_stored_stamps_are_compared_as_numbers_not_as_text(wire, engine)
