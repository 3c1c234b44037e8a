"""``fieldsync-server``: serve, migrate the database, enrol and revoke devices."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask

from protocol import FieldsyncError
from protocol.constants import MAX_WIRE_BYTES

from . import db
from .admins import ROLES, Admin, add_admin, list_admins, revoke_admin
from .app import DATABASE_URL_ENV, create_app
from .auth import Device, add_device, list_devices, revoke_device
from .errors import first_line
from .extension import server_state

log = logging.getLogger("server_sync")

#: Bodies waitress buffers at most (disk spool past 512 KB); between MAX_WIRE_BYTES and
#: this, Flask answers our JSON 413; beyond it, waitress answers a plain-text 413.
WAITRESS_MAX_BODY = 2 * MAX_WIRE_BYTES

#: Open connections waitress serves at once (its default, 100, is easy to fill with
#: idle keep-alive or stalled clients); each costs a file descriptor, not a thread.
WAITRESS_CONNECTION_LIMIT = 1000

#: Seconds before waitress closes a connection with no activity (default 120).
WAITRESS_CHANNEL_TIMEOUT = 60

#: PostgreSQL's answer for a table that is not there (SQLite says "no such table").
_MISSING_TABLE = re.compile(r'relation "[^"]{1,200}" does not exist')

_database_url = click.option(
    "--database-url",
    envvar=DATABASE_URL_ENV,
    default=None,
    help=f"SQLAlchemy URL [env {DATABASE_URL_ENV}; default: SQLite in the instance folder].",
)


@click.group()
def main() -> None:
    """The fieldsync sync server."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--rate-limit-device",
    type=click.IntRange(min=1),
    envvar="FIELDSYNC_RATE_LIMIT_DEVICE",
    help="Batches one device may send per window; more get 429 + Retry-After.",
)
@click.option(
    "--rate-limit-total",
    type=click.IntRange(min=1),
    envvar="FIELDSYNC_RATE_LIMIT_TOTAL",
    help="Batches all devices together may send per window.",
)
@click.option(
    "--rate-limit-window",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    envvar="FIELDSYNC_RATE_LIMIT_WINDOW",
    help="Seconds per rate-limit window.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=4,
    show_default=True,
    help="Worker threads; slow clients are buffered by the I/O thread and hold none.",
)
@_database_url
def serve(
    host: str,
    port: int,
    *,
    rate_limit_device: int | None,
    rate_limit_total: int | None,
    rate_limit_window: float,
    threads: int,
    database_url: str | None,
) -> None:
    """Run the server on waitress (HTTP/1.1 keep-alive, one process)."""
    import waitress

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    limits: dict[str, Any] = {
        "RATE_LIMIT_DEVICE": rate_limit_device,
        "RATE_LIMIT_TOTAL": rate_limit_total,
        "RATE_LIMIT_WINDOW": rate_limit_window,
    }
    with _app(database_url, **limits) as app:
        engine = server_state(app).engine
        log.info("database: %s", engine.url.render_as_string(hide_password=True))
        db.check_connection(engine)
        waitress.serve(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="fieldsync",
            connection_limit=WAITRESS_CONNECTION_LIMIT,
            channel_timeout=WAITRESS_CHANNEL_TIMEOUT,
            max_request_body_size=WAITRESS_MAX_BODY,
            asyncore_use_poll=True,
        )


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@_database_url
def db_upgrade(database_url: str | None) -> None:
    """Migrate the database to the newest schema."""
    with _app(database_url, auto_upgrade=False) as app:
        engine = server_state(app).engine
        db.upgrade(engine)
        where = engine.url.render_as_string(hide_password=True)
        click.echo(f"{where}: at revision {db.current_revision(engine)}")


@main.group()
def devices() -> None:
    """Device enrolment."""


@devices.command("add")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_database_url
def devices_add(name: str, as_json: bool, database_url: str | None) -> None:
    """Enrol a device and print its id and token (shown this once only)."""
    with _app(database_url) as app, server_state(app).engine.begin() as conn:
        device_id, token = add_device(conn, name)
    if as_json:
        click.echo(json.dumps({"device_id": device_id, "token": token}))
    else:
        click.echo(f"device_id: {device_id}\ntoken:     {token}")
        click.echo("The token is not stored and cannot be shown again.", err=True)


@devices.command("revoke")
@click.argument("device_id")
@_database_url
def devices_revoke(device_id: str, database_url: str | None) -> None:
    """Refuse a device from now on; its data stays."""
    with _app(database_url) as app, server_state(app).engine.begin() as conn:
        device = revoke_device(conn, device_id)
    click.echo(f"revoked {device.device_id} ({device.name})")


@devices.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_database_url
def devices_list(as_json: bool, database_url: str | None) -> None:
    """List enrolled devices."""
    with _app(database_url) as app, server_state(app).engine.begin() as conn:
        found = list_devices(conn)
    if as_json:
        click.echo(json.dumps([_device_json(d) for d in found]))
        return
    for d in found:
        state = f"revoked {d.revoked_at:%Y-%m-%d %H:%M}" if d.revoked_at else "active"
        click.echo(f"{d.device_id}  {d.created_at:%Y-%m-%d %H:%M}  {state:<24}  {d.name}")


@main.group()
def admins() -> None:
    """Admin credentials (separate from device credentials)."""


@admins.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="viewer reads; admin acts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_database_url
def admins_add(name: str, role: str, as_json: bool, database_url: str | None) -> None:
    """Create an admin credential and print its token (shown this once only)."""
    with _app(database_url) as app, server_state(app).engine.begin() as conn:
        admin, token = add_admin(conn, name, role)
    if as_json:
        click.echo(json.dumps({**_admin_json(admin), "token": token}))
    else:
        click.echo(f"admin_id: {admin.admin_id}\nrole:     {admin.role}\ntoken:    {token}")
        click.echo("The token is not stored and cannot be shown again.", err=True)


@admins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_database_url
def admins_list(as_json: bool, database_url: str | None) -> None:
    """List admin credentials (never their tokens)."""
    with _app(database_url) as app, server_state(app).engine.begin() as conn:
        found = list_admins(conn)
    if as_json:
        click.echo(json.dumps([_admin_json(a) for a in found]))
        return
    for a in found:
        state = f"revoked {a.revoked_at:%Y-%m-%d %H:%M}" if a.revoked_at else "active"
        click.echo(
            f"{a.admin_id}  {a.role:<6}  {a.created_at:%Y-%m-%d %H:%M}  {state:<24}  {a.name}"
        )


@admins.command("revoke")
@click.argument("admin_id")
@_database_url
def admins_revoke(admin_id: str, database_url: str | None) -> None:
    """Refuse an admin credential from now on."""
    with _app(database_url) as app, server_state(app).engine.begin() as conn:
        admin = revoke_admin(conn, admin_id)
    click.echo(f"revoked {admin.admin_id} ({admin.name}, {admin.role})")


@contextmanager
def _app(
    database_url: str | None, *, auto_upgrade: bool | None = None, **extra: Any
) -> Iterator[Flask]:
    """An app for one command; errors become a one-line message and a non-zero exit."""
    config: dict[str, Any] = {"AUTO_UPGRADE": auto_upgrade, **extra}
    if database_url:
        config["DATABASE_URL"] = database_url
    app: Flask | None = None
    try:
        app = create_app(config)
        yield app
    except (FieldsyncError, sa.exc.SQLAlchemyError, ValueError, OSError) as exc:
        raise click.ClickException(_message(exc, database_url)) from exc
    finally:
        if app is not None:
            server_state(app).engine.dispose()


def _message(exc: BaseException, database_url: str | None) -> str:
    """One line saying what failed and, where we know it, what to do about it."""
    explained = db.explain(exc, database_url)
    if explained is not None:
        return explained
    message = first_line(exc)
    if "no such table" in message or _MISSING_TABLE.search(message):
        message += " (run `fieldsync-server db upgrade` first)"
    return message


def _admin_json(admin: Admin) -> dict[str, Any]:
    return {
        "admin_id": admin.admin_id,
        "name": admin.name,
        "role": admin.role,
        "created_at": admin.created_at.isoformat(),
        "revoked_at": admin.revoked_at.isoformat() if admin.revoked_at else None,
    }


def _device_json(device: Device) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "name": device.name,
        "created_at": device.created_at.isoformat(),
        "revoked_at": device.revoked_at.isoformat() if device.revoked_at else None,
    }


if __name__ == "__main__":
    main()
