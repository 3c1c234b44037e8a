"""The Alembic migrations shipped in the package build exactly the tables the code uses."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import server_sync
from server_sync import create_app, create_engine, upgrade
from server_sync.db import alembic_config, current_revision, head_revision
from server_sync.extension import server_state
from server_sync.models import metadata

TABLES = {
    "alembic_version",
    "devices",
    "ops",
    "records",
    "rate_windows",
    "admins",
    "admin_log",
    "device_databox",
    "device_databox_state",
    "device_databox_reasons",
    "device_commands",
}


def _check_matches_models(engine: sa.Engine) -> None:
    assert set(sa.inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    assert current_revision(engine) == head_revision() == "0006"


def test_the_script_location_is_inside_the_installed_package() -> None:
    location = Path(alembic_config().get_main_option("script_location") or "")
    assert location == Path(server_sync.__file__).parent / "migrations"
    revisions = [r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    assert revisions == ["0006", "0004", "0003", "0002", "0001"]


def test_upgrade_on_sqlite_matches_the_models_and_downgrades(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        _check_matches_models(engine)
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade(engine)
        _check_matches_models(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_upgrade_on_postgres_matches_the_models(pg_schema_url: str) -> None:
    engine = create_engine(pg_schema_url)
    try:
        _check_matches_models(engine)
        with engine.connect() as conn:
            collations = conn.execute(
                sa.text(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND collation_name = 'C'"
                )
            ).all()
        assert set(collations) == {
            ("ops", "hlc"),
            ("records", "collection"),
            ("records", "record_id"),
        }
    finally:
        engine.dispose()


@pytest.mark.parametrize("round_", range(10))  # the race is rare: give it ten chances
def test_apps_starting_together_on_a_new_sqlite_file_both_migrate(
    tmp_path: Path, round_: int
) -> None:
    url = f"sqlite:///{tmp_path / f'together-{round_}.db'}"
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            server_state(create_app({"DATABASE_URL": url})).engine.dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    engine = create_engine(url)
    try:
        _check_matches_models(engine)
    finally:
        engine.dispose()
