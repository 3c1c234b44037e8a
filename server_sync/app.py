"""The Flask app factory and the one error handler that answers every error in JSON."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from protocol import EntryInvalid, ProtocolError, UnsupportedVersion, crm_registry
from protocol.constants import MAX_WIRE_BYTES

from . import db
from .admin import admin
from .drain import drain_request_body
from .errors import HttpError, Unavailable, first_line
from .extension import EXTENSION, ServerState
from .metrics import metrics
from .openapi import openapi
from .ratelimit import RateLimit
from .views import sync

#: Environment variable naming the database when the config does not.
DATABASE_URL_ENV = "FIELDSYNC_DATABASE_URL"

#: Load-shedding settings, each also read from the environment as FIELDSYNC_<key>.
RATE_KEYS = ("RATE_LIMIT_DEVICE", "RATE_LIMIT_TOTAL", "RATE_LIMIT_WINDOW")

#: Proxies in front whose X-Forwarded-For is believed (nginx: 1); also env FIELDSYNC_<key>.
TRUSTED_PROXIES = "TRUSTED_PROXIES"

#: Machine codes for the HTTP errors werkzeug raises itself.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the sync server.

    Config keys: ``DATABASE_URL`` (else env FIELDSYNC_DATABASE_URL, else
    ``sqlite:///<instance>/fieldsync.db``), ``AUTO_UPGRADE`` (migrate at start; default
    on for SQLite only), ``REGISTRY`` (a protocol.Registry; default the CRM one),
    ``MAX_CONTENT_LENGTH`` (default protocol.constants.MAX_WIRE_BYTES),
    ``RATE_LIMIT_DEVICE`` / ``RATE_LIMIT_TOTAL`` (batches per ``RATE_LIMIT_WINDOW``
    seconds, default 1; else env FIELDSYNC_RATE_LIMIT_DEVICE / _TOTAL / _WINDOW;
    unset: no load shedding), ``TRUSTED_PROXIES`` (proxies in front whose
    X-Forwarded-For is believed, default 0; else env FIELDSYNC_TRUSTED_PROXIES).
    """
    app = Flask("server_sync")
    app.config.update(
        DATABASE_URL=None, AUTO_UPGRADE=None, REGISTRY=None, MAX_CONTENT_LENGTH=MAX_WIRE_BYTES
    )
    app.config.update({key: os.environ.get(f"FIELDSYNC_{key}") for key in RATE_KEYS})
    app.config.update(config or {})
    rate_limit = _rate_limit(app.config)
    hops = _trusted_proxies(app.config)
    url = app.config["DATABASE_URL"] or os.environ.get(DATABASE_URL_ENV) or _default_url(app)
    app.config["DATABASE_URL"] = url
    engine = db.create_engine(url)
    auto_upgrade = app.config["AUTO_UPGRADE"]
    if auto_upgrade is None:
        auto_upgrade = engine.dialect.name == "sqlite"
    if auto_upgrade:
        try:
            db.upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
    app.extensions[EXTENSION] = ServerState(
        engine, app.config["REGISTRY"] or crm_registry(), rate_limit
    )
    app.register_blueprint(sync)
    app.register_blueprint(openapi)
    app.register_blueprint(admin)
    app.register_blueprint(metrics)
    app.register_error_handler(Exception, render_error)
    app.wsgi_app = drain_request_body(app.wsgi_app)  # type: ignore[method-assign,assignment]
    if hops:  # the admin log records the client's address, not nginx's
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops)  # type: ignore[method-assign]
    return app


def _trusted_proxies(config: dict[str, Any]) -> int:
    value = config.get(TRUSTED_PROXIES, os.environ.get(f"FIELDSYNC_{TRUSTED_PROXIES}"))
    text = str(value if value is not None else "0").strip()
    if not (text.isascii() and text.isdigit() and int(text) <= 10):
        raise ValueError(f"{TRUSTED_PROXIES} must be a whole number 0-10, not {value!r}")
    return int(text)


def _rate_limit(config: dict[str, Any]) -> RateLimit:
    def number(key: str, kind: type[int] | type[float]) -> Any:
        value = config.get(key)
        try:
            return None if value in (None, "") else kind(value)
        except ValueError as exc:
            raise ValueError(f"{key} must be a number, not {value!r}") from exc

    return RateLimit(
        per_device=number("RATE_LIMIT_DEVICE", int),
        total=number("RATE_LIMIT_TOTAL", int),
        window=number("RATE_LIMIT_WINDOW", float) or 1.0,
    )


def render_error(exc: Exception) -> Response:
    """Every error as ``{"error": {"code", "message", "details"}}``; never an HTML page."""
    if isinstance(exc, sa.exc.OperationalError | sa.exc.TimeoutError):
        _log(exc)
        exc = Unavailable(f"database unavailable: {first_line(exc)}")
    status, code, message, details = _describe(exc)
    response = jsonify(error={"code": code, "message": message, "details": details})
    response.status_code = status
    if isinstance(exc, HTTPException):  # keep e.g. the Allow header of a 405
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
    if isinstance(exc, HttpError) and exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _describe(exc: Exception) -> tuple[int, str, str, dict[str, Any]]:
    if isinstance(exc, HttpError):
        return exc.status, exc.code, exc.message, exc.details
    if isinstance(exc, UnsupportedVersion):
        return 426, "upgrade_required", str(exc), _jsonable(exc.errors)
    if isinstance(exc, ProtocolError):
        return 400, "malformed_batch", str(exc), _jsonable(exc.errors)
    if isinstance(exc, EntryInvalid):
        return 400, "invalid_entry", str(exc), {"code": exc.code, "field": exc.field}
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        code = _HTTP_CODES.get(status) or exc.name.lower().replace(" ", "_")
        return status, code, exc.description or exc.name, {}
    _log(exc)
    return 500, "internal", "internal server error", {}


def _log(exc: Exception) -> None:
    from flask import current_app

    current_app.logger.error("request failed", exc_info=exc)


def _jsonable(value: Any) -> Any:
    """Field-error dicts from marshmallow have int keys (list indexes); JSON wants strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _default_url(app: Flask) -> str:
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(app.instance_path) / 'fieldsync.db'}"
