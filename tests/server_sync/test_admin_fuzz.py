"""Fuzzing the admin API: any body, query string or device id gets a 4xx that changes
nothing (only its log row), or a command that is really there; never a 500."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server_sync.models import admin_log, device_commands
from tests.server_sync.admin_helpers import admin_client
from tests.server_sync.conftest import Wire

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: Every character, lone surrogates, NUL and controls included.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=80)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    ANY_TEXT,
    st.sampled_from(["discard", "resubmit", "op-1", ""]),
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
_bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={"kind": _values, "op_id": _values, "reason": _values, "extra": _values},
    ),
    _values,
)


def _counts(app: Flask) -> tuple[int, int]:
    from server_sync.extension import server_state

    with server_state(app).engine.connect() as conn:
        commands = conn.execute(sa.select(sa.func.count()).select_from(device_commands)).scalar()
        logged = conn.execute(sa.select(sa.func.count()).select_from(admin_log)).scalar()
    return int(commands or 0), int(logged or 0)


@FUZZ
@given(body=_bodies)
def test_any_json_command_body(app: Flask, wire: Wire, body: Any) -> None:
    boss = admin_client(app, name="fuzz")
    commands, logged = _counts(app)
    answer = boss.command(
        wire.device_id,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code in (200, 201, 400), answer.get_data()
    grew = 1 if answer.status_code == 201 else 0
    assert _counts(app) == (commands + grew, logged + 1)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_any_bytes_as_a_command_body(app: Flask, wire: Wire, raw: bytes) -> None:
    boss = admin_client(app, name="fuzz")
    commands, _ = _counts(app)
    answer = boss.command(wire.device_id, data=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code in (200, 201, 400), answer.get_data()
    assert _counts(app)[0] == commands + (answer.status_code == 201)


@FUZZ
@given(
    query=st.lists(
        st.tuples(
            st.sampled_from(["limit", "offset", "code", "device_id", "min_age_s", "before", "x"]),
            st.one_of(ANY_TEXT, st.integers(-5, 2**64).map(str)),
        ),
        max_size=4,
    ),
    path=st.sampled_from(["/v1/admin/databox", "/v1/admin/log", "commands"]),
)
def test_any_query_string(app: Flask, wire: Wire, query: list[tuple[str, str]], path: str) -> None:
    boss = admin_client(app, name="fuzz")
    if path == "commands":
        path = f"/v1/admin/devices/{wire.device_id}/commands"
    encoded = urlencode(query, encoding="utf-8", errors="surrogatepass")
    answer = boss.get(f"{path}?{encoded}")
    assert answer.status_code in (200, 400), answer.get_data()


@FUZZ
@given(device_id=ANY_TEXT.filter(bool))
def test_any_device_id_in_the_path(app: Flask, device_id: str) -> None:
    boss = admin_client(app, name="fuzz")
    path = quote(device_id.encode("utf-8", "surrogatepass"), safe="")
    for answer in (
        boss.get(f"/v1/admin/devices/{path}/commands"),
        boss.command(path, {"kind": "resubmit", "op_id": "op-1"}),
    ):
        # 308: an id holding "/" makes "//" in the path, which werkzeug redirects to "/".
        assert answer.status_code in (404, 308), answer.get_data()
    assert _counts(app)[0] == 0
