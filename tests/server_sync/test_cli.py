"""fieldsync-server: migrate, enrol, list and revoke devices; errors are one line."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from flask import Flask

from server_sync import create_app
from server_sync.cli import main
from server_sync.db import head_revision
from server_sync.extension import server_state
from tests.server_sync.conftest import Wire, error_of


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env={"FIELDSYNC_DATABASE_URL": None, **(env or {})}).invoke(
        main, list(args), catch_exceptions=False
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def served(url: str) -> Iterator[Flask]:
    """An app on the same database file as the commands."""
    app = create_app({"DATABASE_URL": url})
    yield app
    server_state(app).engine.dispose()


def test_db_upgrade_creates_the_tables_and_can_run_again(url: str) -> None:
    first = run("db", "upgrade", "--database-url", url)
    assert first.exit_code == 0, first.output
    assert f"at revision {head_revision()}" in first.stdout
    assert run("db", "upgrade", "--database-url", url).exit_code == 0

    engine = sa.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"devices", "ops", "records", "alembic_version"} <= tables


def test_devices_add_json_prints_a_token_the_server_accepts(url: str, served: Flask) -> None:
    result = run("devices", "add", "Rep 7 phone", "--json", "--database-url", url)
    assert result.exit_code == 0, result.output
    enrolled = json.loads(result.stdout)
    assert set(enrolled) == {"device_id", "token"}

    wire = Wire(served.test_client(), enrolled["device_id"], enrolled["token"])
    assert wire.ack(wire.batch(wire.entry(1))).results[0].status == "applied"
    assert wire.post(wire.batch(wire.entry(2)), token="not-it").status_code == 401


def test_devices_add_prints_id_and_token(url: str) -> None:
    result = run("devices", "add", "tablet", "--database-url", url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("device_id: ")
    assert lines[1].startswith("token: ")


def test_devices_list_and_revoke(url: str, served: Flask) -> None:
    added = json.loads(run("devices", "add", "one", "--json", "--database-url", url).stdout)
    run("devices", "add", "two", "--database-url", url)

    listed = json.loads(run("devices", "list", "--json", "--database-url", url).stdout)
    assert [(d["name"], d["revoked_at"]) for d in listed] == [("one", None), ("two", None)]
    assert "token" not in json.dumps(listed)

    revoked = run("devices", "revoke", added["device_id"], "--database-url", url)
    assert revoked.exit_code == 0, revoked.output
    listed = json.loads(run("devices", "list", "--json", "--database-url", url).stdout)
    assert listed[0]["revoked_at"] is not None and listed[1]["revoked_at"] is None
    table = run("devices", "list", "--database-url", url).stdout
    assert "revoked" in table and "active" in table

    wire = Wire(served.test_client(), added["device_id"], added["token"])
    response = wire.post(wire.batch(wire.entry(1)))
    assert response.status_code == 403
    assert error_of(response)["code"] == "device_revoked"


def test_the_database_url_comes_from_the_environment(url: str) -> None:
    env = {"FIELDSYNC_DATABASE_URL": url}
    assert run("devices", "add", "from env", env=env).exit_code == 0
    listed = json.loads(run("devices", "list", "--json", "--database-url", url).stdout)
    assert [d["name"] for d in listed] == ["from env"]


@pytest.mark.parametrize(
    "args",
    [
        ("devices", "revoke", "no-such-device"),
        ("devices", "add", "   "),
        ("db", "upgrade", "--database-url", "nosuchdriver://x"),
        ("devices", "list", "--database-url", "sqlite:////nonexistent-dir/sub/x.db"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(url: str, args: tuple[str, ...]) -> None:
    if "--database-url" not in args:
        args = (*args, "--database-url", url)
    result = run(*args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("Error: ")


# --- messages that name the fix -------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgres", "postgres+psycopg"])
def test_a_postgres_scheme_url_says_which_scheme_to_use(scheme: str) -> None:
    url = f"{scheme}://fieldsync@127.0.0.1:5432/fieldsync"
    result = run("devices", "list", "--database-url", url)
    assert result.exit_code == 1
    assert f"{scheme}:// is not a SQLAlchemy URL scheme" in result.output
    assert "use postgresql+psycopg://" in result.output
    with pytest.raises(ValueError, match=r"use postgresql\+psycopg://"):
        create_app({"DATABASE_URL": url})


def test_a_sqlite_file_in_a_missing_folder_names_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "not-made" / "sub"
    url = f"sqlite:///{folder / 'fieldsync.db'}"
    for args in (("devices", "list"), ("serve", "--port", "0"), ("db", "upgrade")):
        result = run(*args, "--database-url", url)
        assert result.exit_code == 1, result.output
        assert f"folder {folder} does not exist" in result.output
        assert "db upgrade` first" not in result.output  # not the misleading old hint
    with pytest.raises(ValueError, match=f"folder {folder} does not exist"):
        create_app({"DATABASE_URL": url})
    assert not (tmp_path / "not-made").exists()


@pytest.mark.postgres
def test_a_missing_postgres_database_says_createdb(pg_url: str) -> None:
    name = f"fieldsync_missing_{uuid.uuid4().hex[:8]}"
    url = sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    for args in (("devices", "list"), ("serve", "--port", "0"), ("db", "upgrade")):
        result = run(*args, "--database-url", url)
        assert result.exit_code == 1, result.output
        assert f'PostgreSQL database "{name}" does not exist' in result.output
        assert f"`createdb {name}`" in result.output
    with pytest.raises(ValueError, match=f"createdb {name}"):
        create_app({"DATABASE_URL": url, "AUTO_UPGRADE": True})
