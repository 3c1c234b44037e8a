"""Bad requests get a specific JSON error and change nothing; never HTML, never a 500."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import Collection, FieldSpec, Registry, compress, decode_ack, encode_batch
from protocol.constants import MAX_WIRE_BYTES
from server_sync import add_device, create_app, get_record, revoke_device
from server_sync.extension import server_state
from tests.server_sync.conftest import Wire, error_of, rows

Mutation = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Mutation:
    def mutate(batch: dict[str, Any]) -> dict[str, Any]:
        *parents, last = path.split(".")
        node: Any = batch
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return batch

    return mutate


_DELETE = object()

# name: (mutation of the wire dict or raw body, gzip it?, path expected in details)
MALFORMED: dict[str, tuple[Mutation, bool, tuple[str, ...]]] = {
    "not json": (lambda b: b"{not json", False, ()),
    "not gzip": (lambda b: b"plain bytes", True, ()),
    "truncated gzip": (lambda b: compress(json.dumps(b).encode())[:-12], False, ()),
    "a json array": (lambda b: b"[]", False, ()),
    "missing op_id": (_set("entries.0.op_id", _DELETE), True, ("entries", "0", "op_id")),
    "seq as a string": (_set("entries.0.seq", "1"), True, ("entries", "0", "seq")),
    "unknown kind": (_set("entries.1.kind", "replace"), True, ("entries", "1", "kind")),
    "fields not an object": (_set("entries.0.fields", []), True, ("entries", "0", "fields")),
    "entry of another device": (
        _set("entries.1.device_id", "someone-else"),
        True,
        ("entries", "1"),
    ),
    "empty entries": (_set("entries", []), True, ("entries",)),
    "seq not increasing": (_set("entries.1.seq", 1), True, ("entries",)),
    "bad hlc": (_set("entries.0.hlc", "yesterday"), True, ("entries", "0", "hlc")),
    "NaN in fields": (
        lambda b: json.dumps(_set("entries.0.fields.notes", float("nan"))(b)).encode(),
        True,
        (),  # refused while parsing: the message says "NaN is not a JSON value"
    ),
    "missing protocol_version": (_set("protocol_version", _DELETE), True, ("protocol_version",)),
}


def _wire_dict(wire: Wire) -> dict[str, Any]:
    batch = wire.batch(wire.entry(1), wire.entry(2, tx="t2", record_id="c2"))
    return dict(json.loads(encode_batch(batch)))


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_batches_are_refused_whole_with_field_errors(
    wire: Wire, engine: sa.Engine, case: str
) -> None:
    mutate, gzipped, path = MALFORMED[case]
    body = mutate(_wire_dict(wire))
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    if gzipped:
        body = gzip.compress(body)
    before = rows(engine)

    response = wire.post(body, encoding="gzip" if gzipped else "identity")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "malformed_batch"
    node: Any = error["details"]
    for key in path:
        assert key in node, (key, error)
        node = node[key]
    assert rows(engine) == before


def test_a_body_that_inflates_past_the_limit_is_refused(wire: Wire, engine: sa.Engine) -> None:
    bomb = gzip.compress(b"0" * (9 * 1024 * 1024))
    assert len(bomb) < MAX_WIRE_BYTES
    before = rows(engine)

    response = wire.post(bomb)

    assert response.status_code == 400
    assert "inflates past" in error_of(response)["message"]
    assert rows(engine) == before


def test_a_batch_sent_as_another_device_is_forbidden(
    wire: Wire, engine: sa.Engine, app: Flask
) -> None:
    with engine.begin() as conn:
        other_id, _ = add_device(conn, "someone else's phone")
    other = Wire(app.test_client(), other_id, "unused")
    before = rows(engine)

    response = wire.post(other.batch(other.entry(1)))

    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "wrong_device"
    assert error["message"] == "a device can only submit as itself"
    assert rows(engine) == before


def test_an_oversize_body_is_413(wire: Wire) -> None:
    response = wire.post(b"x" * (MAX_WIRE_BYTES + 1), encoding="identity")
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}],
)
def test_a_wrong_content_type_is_415(wire: Wire, headers: dict[str, str]) -> None:
    response = wire.post(wire.batch(wire.entry(1)), headers=headers)
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_an_unknown_content_encoding_is_415(wire: Wire, engine: sa.Engine) -> None:
    body = compress(encode_batch(wire.batch(wire.entry(1))))
    response = wire.post(body, encoding="identity", headers={"Content-Encoding": "br"})
    assert response.status_code == 415
    error = error_of(response)
    assert error["details"]["accepted"] == ["gzip", "identity"]
    assert rows(engine)["ops"] == []


def test_another_protocol_major_is_426_and_nothing_is_written(
    wire: Wire, engine: sa.Engine
) -> None:
    before = rows(engine)
    response = wire.post(wire.batch(wire.entry(1), version="1.0"))
    assert response.status_code == 426
    assert error_of(response)["code"] == "upgrade_required"
    assert rows(engine) == before


def test_an_unknown_schema_version_is_426_for_the_whole_batch(
    wire: Wire, engine: sa.Engine
) -> None:
    before = rows(engine)
    batch = wire.batch(wire.entry(1), wire.entry(2, tx="t2", record_id="c2", schema_version=7))

    response = wire.post(batch)

    assert response.status_code == 426
    error = error_of(response)
    assert error["code"] == "upgrade_required"
    assert "schema_version" in error["details"]["entries"]["1"]
    assert rows(engine) == before


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-token", "token abc"],
)
def test_no_valid_token_is_401(wire: Wire, engine: sa.Engine, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = wire.client.post(
        "/v1/batches",
        data=compress(encode_batch(wire.batch(wire.entry(1)))),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip", **headers},
    )
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert rows(engine)["ops"] == []


def test_a_revoked_device_is_refused_and_its_data_stays(wire: Wire, engine: sa.Engine) -> None:
    wire.ack(wire.batch(wire.entry(1)))
    with engine.begin() as conn:
        revoke_device(conn, wire.device_id)

    response = wire.post(wire.batch(wire.entry(2, record_id="c2")))

    assert response.status_code == 403
    assert error_of(response)["code"] == "device_revoked"
    with engine.connect() as conn:
        assert get_record(conn, "customers", "c1") is not None
        assert get_record(conn, "customers", "c2") is None


def test_unknown_paths_and_methods_answer_json(wire: Wire) -> None:
    missing = wire.client.get("/nowhere")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    wrong = wire.client.get("/v1/batches")
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"]


class _Explodes:
    def normalize(self, value: Any, field: str) -> Any:
        raise RuntimeError("bug in a field type")


@pytest.fixture
def buggy_app(tmp_path: Path) -> Iterator[Flask]:
    registry = Registry([Collection("things", {"x": FieldSpec(_Explodes())})])
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}", "REGISTRY": registry})
    yield app
    server_state(app).engine.dispose()


def test_a_server_bug_is_a_json_500_and_rolls_back(buggy_app: Flask) -> None:
    engine = server_state(buggy_app).engine
    with engine.begin() as conn:
        device_id, token = add_device(conn, "phone")
    wire = Wire(buggy_app.test_client(), device_id, token)
    before = rows(engine)

    response = wire.post(wire.batch(wire.entry(1, collection="things", fields={"x": 1})))

    assert response.status_code == 500
    error = error_of(response)
    assert error == {"code": "internal", "message": "internal server error", "details": {}}
    assert "bug in a field type" not in response.get_data(as_text=True)
    assert rows(engine) == before


def test_healthz_is_ok_with_a_database(wire: Wire) -> None:
    response = wire.client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_healthz_is_503_without_a_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    app = create_app({"DATABASE_URL": url, "AUTO_UPGRADE": False})
    try:
        response = app.test_client().get("/healthz")
    finally:
        server_state(app).engine.dispose()
    assert response.status_code == 503
    assert error_of(response)["code"] == "unavailable"
    assert response.headers["Retry-After"] == "1"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=300), gzipped=st.booleans())
def test_garbage_bodies_are_400_never_500(wire: Wire, body: bytes, gzipped: bool) -> None:
    response = wire.post(body, encoding="gzip" if gzipped else "identity")
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_batch"


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fields=st.dictionaries(
        st.sampled_from(["name", "phone", "email", "notes", "x", ""]), _json, max_size=4
    ),
    kind=st.sampled_from(["upsert", "patch", "delete"]),
)
def test_any_field_values_get_a_verdict_never_a_500(
    wire: Wire, fields: dict[str, Any], kind: str
) -> None:
    wire_entry = wire.entry(wire.sent + 1, kind=kind, fields=fields)
    response = wire.post(wire.batch(wire_entry))
    assert response.status_code in (200, 400), response.get_data(as_text=True)


def test_the_ack_is_gzipped_only_for_a_device_that_accepts_it(wire: Wire) -> None:
    plain = wire.post(wire.batch(wire.entry(1)))
    assert plain.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert decode_ack(plain.get_data()).results[0].status == "applied"

    zipped = wire.post(wire.batch(wire.entry(1)), headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    ack = decode_ack(gzip.decompress(zipped.get_data()))
    assert ack.results[0].status == "duplicate"


def test_token_checks_and_health_do_not_wait_for_the_sqlite_write_lock(
    wire: Wire, sqlite_url: str
) -> None:
    writer = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process is writing a big batch
    try:
        assert wire.client.get("/healthz").status_code == 200
        assert wire.post(wire.batch(wire.entry(1)), token="wrong").status_code == 401
    finally:
        writer.execute("ROLLBACK")
        writer.close()
