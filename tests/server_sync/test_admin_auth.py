"""Admin credentials: apart from device credentials, hashed, shown once; roles; the log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from flask import Flask

from server_sync import create_app
from server_sync.admins import add_admin, authenticate_admin, list_admins, revoke_admin
from server_sync.auth import hash_token
from server_sync.cli import main
from server_sync.errors import AdminUnauthorized, DeviceToken, RoleRequired
from server_sync.extension import server_state
from server_sync.models import admins
from tests.server_sync.admin_helpers import AdminClient, admin_client, log_rows
from tests.server_sync.conftest import Wire, error_of

READS = ("/v1/admin/databox", "/v1/admin/devices/{device}/commands")


def run(*args: str) -> Result:
    return CliRunner(env={"FIELDSYNC_DATABASE_URL": None}).invoke(
        main, list(args), catch_exceptions=False
    )


def test_admins_add_prints_the_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    added = run("admins", "add", "Ops lead", "--role", "admin", "--json", "--database-url", url)
    assert added.exit_code == 0, added.output
    printed = json.loads(added.stdout)
    assert set(printed) == {"admin_id", "name", "role", "created_at", "revoked_at", "token"}
    assert printed["role"] == "admin" and printed["token"].startswith("fsa_")

    listed = run("admins", "list", "--json", "--database-url", url)
    assert printed["token"] not in listed.stdout and "token" not in listed.stdout
    assert [a["admin_id"] for a in json.loads(listed.stdout)] == [printed["admin_id"]]

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.select(admins)).one()._mapping
    finally:
        engine.dispose()
    assert stored["token_hash"] == hash_token(printed["token"])
    assert printed["token"] not in {str(v) for v in stored.values()}

    app = create_app({"DATABASE_URL": url})
    try:
        client = AdminClient(app.test_client(), printed["token"])
        assert client.get("/v1/admin/log").status_code == 200
        revoked = run("admins", "revoke", printed["admin_id"], "--database-url", url)
        assert revoked.exit_code == 0 and "revoked" in revoked.stdout
        assert error_of(client.get("/v1/admin/log"))["code"] == "admin_revoked"
    finally:
        server_state(app).engine.dispose()


def test_admins_add_text_and_bad_role(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    shown = run("admins", "add", "Viewer", "--role", "viewer", "--database-url", url)
    assert shown.exit_code == 0
    assert [line.split(":")[0] for line in shown.stdout.splitlines()] == [
        "admin_id",
        "role",
        "token",
    ]
    bad = CliRunner().invoke(main, ["admins", "add", "x", "--role", "root", "--database-url", url])
    assert bad.exit_code == 2 and "root" in bad.output
    missing = CliRunner().invoke(main, ["admins", "revoke", "nobody", "--database-url", url])
    assert missing.exit_code == 1 and "no admin 'nobody'" in missing.output


def test_each_token_is_new_and_random(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        tokens = {add_admin(conn, f"a{i}", "viewer")[1] for i in range(20)}
        assert len(tokens) == 20
        assert len(list_admins(conn)) == 20


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "tab\there", "nul\x00"])
def test_a_bad_admin_name_is_refused(engine: sa.Engine, name: str) -> None:
    with engine.begin() as conn, pytest.raises(ValueError, match="admin name"):
        add_admin(conn, name, "admin")


def test_a_viewer_reads_and_only_an_admin_sends_commands_or_reads_the_log(
    app: Flask, wire: Wire
) -> None:
    viewer = admin_client(app, "viewer", "vic")
    boss = admin_client(app, "admin", "ann")
    for path in READS:
        assert viewer.get(path.format(device=wire.device_id)).status_code == 200
        assert boss.get(path.format(device=wire.device_id)).status_code == 200
    body = {"kind": "resubmit", "op_id": "op-1"}
    refused = viewer.command(wire.device_id, body)
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "role_required"
    assert error_of(viewer.get("/v1/admin/log"))["code"] == "role_required"
    assert boss.command(wire.device_id, body).status_code == 201
    assert boss.get("/v1/admin/log").status_code == 200


def test_a_device_token_never_reads_admin_endpoints(app: Flask, wire: Wire) -> None:
    as_device = AdminClient(app.test_client(), wire.token)
    answers = [as_device.get(p.format(device=wire.device_id)) for p in READS]
    answers.append(as_device.get("/v1/admin/log"))
    answers.append(as_device.command(wire.device_id, {"kind": "resubmit", "op_id": "x"}))
    for answer in answers:
        assert answer.status_code == 403
        assert error_of(answer)["code"] == "device_token"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer nobody", "Bearer " + "x" * 300],
)
def test_no_or_an_unknown_token_is_401(app: Flask, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    answer = app.test_client().get("/v1/admin/databox", headers=headers)
    assert answer.status_code == 401
    assert error_of(answer)["code"] == "admin_unauthorized"


def test_an_admin_token_is_not_a_device_token(app: Flask, wire: Wire) -> None:
    boss = admin_client(app)
    answer = wire.post(wire.batch(wire.entry(1)), token=boss.token)
    assert answer.status_code == 401


def test_authenticate_admin_checks_the_role(engine: sa.Engine, wire: Wire) -> None:
    with engine.begin() as conn:
        viewer, token = add_admin(conn, "v", "viewer")
        assert authenticate_admin(conn, f"Bearer {token}", "viewer") == viewer
        with pytest.raises(RoleRequired):
            authenticate_admin(conn, f"bearer  {token} ", "admin")
        with pytest.raises(DeviceToken):
            authenticate_admin(conn, f"Bearer {wire.token}", "viewer")
        with pytest.raises(AdminUnauthorized):
            authenticate_admin(conn, "Bearer \x00\ud800", "viewer")
        first = revoke_admin(conn, viewer.admin_id, now=datetime(2030, 1, 1, tzinfo=UTC))
        again = revoke_admin(conn, viewer.admin_id)
        assert first.revoked_at == again.revoked_at == datetime(2030, 1, 1, tzinfo=UTC)


def test_every_admin_request_is_logged_who_what_when_where_status(
    app: Flask, engine: sa.Engine, wire: Wire
) -> None:
    boss = admin_client(app)
    viewer = admin_client(app, "viewer", "vic")
    before = datetime.now(UTC)
    boss.get("/v1/admin/databox", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    viewer.command(wire.device_id, {"kind": "resubmit", "op_id": "op-1"})
    AdminClient(app.test_client(), wire.token).get("/v1/admin/log")
    app.test_client().get("/v1/admin/databox?limit=0")
    boss.get("/v1/admin/databox?limit=%00")
    rows = log_rows(engine)
    seen = [
        (r["admin_id"], r["remote_addr"], r["method"], r["path"], r["status"], r["code"])
        for r in rows
    ]
    assert seen == [
        (boss.admin_id, "203.0.113.7", "GET", "/v1/admin/databox", 200, None),
        (
            viewer.admin_id,
            "127.0.0.1",
            "POST",
            f"/v1/admin/devices/{wire.device_id}/commands",
            403,
            "role_required",
        ),
        (None, "127.0.0.1", "GET", "/v1/admin/log", 403, "device_token"),
        (None, "127.0.0.1", "GET", "/v1/admin/databox", 401, "admin_unauthorized"),
        (boss.admin_id, "127.0.0.1", "GET", "/v1/admin/databox", 400, "invalid_request"),
    ]
    for row in rows:
        at = row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=UTC)
        assert before <= at <= datetime.now(UTC)


def test_a_hostile_path_is_logged_escaped_and_cut(app: Flask, engine: sa.Engine) -> None:
    boss = admin_client(app)
    answer = boss.get("/v1/admin/devices/a%00b%01/commands")
    assert answer.status_code == 404
    long_id = "d" * 2000
    assert boss.get(f"/v1/admin/devices/{long_id}/commands").status_code == 404
    first, second = log_rows(engine)
    assert first["path"] == "/v1/admin/devices/a\\x00b\\x01/commands"
    assert first["code"] == "unknown_device"
    assert len(second["path"]) == 512 and second["path"].endswith("…")


def test_the_log_is_paged_newest_first(app: Flask, engine: sa.Engine) -> None:
    boss = admin_client(app)
    for _ in range(5):
        boss.get("/v1/admin/databox")
    page = boss.get("/v1/admin/log?limit=2").json
    assert page is not None
    ids = [e["id"] for e in page["entries"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 2
    after = boss.get(f"/v1/admin/log?limit=2&before={page['next_before']}").json
    assert after is not None
    assert [e["id"] for e in after["entries"]] == [ids[-1] - 1, ids[-1] - 2]
    everything = boss.get("/v1/admin/log?limit=500").json
    assert everything is not None and everything["next_before"] is None
    # Requests to the log are logged too: 5 + 2 before the last, which is not in its own page.
    assert len(everything["entries"]) == 7 == len(log_rows(engine)) - 1


def test_an_admin_request_is_not_served_when_it_cannot_be_logged(
    app: Flask, engine: sa.Engine
) -> None:
    boss = admin_client(app)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE admin_log")
    answer = boss.get("/v1/admin/databox")
    assert answer.status_code == 503  # not a 200 without its log row
    assert error_of(answer)["code"] == "unavailable"


def test_the_logged_address_believes_x_forwarded_for_only_from_trusted_proxies(
    tmp_path: Path,
) -> None:
    for hops, expected in ((0, "127.0.0.1"), (1, "198.51.100.4")):
        app = create_app(
            {"DATABASE_URL": f"sqlite:///{tmp_path / f'{hops}.db'}", "TRUSTED_PROXIES": hops}
        )
        try:
            admin_client(app).get(
                "/v1/admin/databox", headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.4"}
            )
            (row,) = log_rows(server_state(app).engine)
            assert row["remote_addr"] == expected
        finally:
            server_state(app).engine.dispose()
    for bad in ("-1", "１", "11", "x"):
        with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
            create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'bad.db'}", "TRUSTED_PROXIES": bad})
