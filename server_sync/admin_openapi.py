"""The admin API and ``/metrics`` in the OpenAPI document (``openapi._document`` calls in).

Query strings and bodies are described by the very schemas that load them
(``admin_schemas``); every status a view can answer is listed with its codes.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from protocol.constants import MAX_ID_LENGTH, MEDIA_TYPE

from . import admin_schemas as s
from .admin import MAX_ADMIN_BODY

#: The security scheme of an admin credential.
ADMIN_TOKEN = "adminToken"

#: Refusals every admin endpoint may answer.
_AUTH_ERRORS: dict[int, str] = {
    400: "`invalid_request`: a query parameter or body member missing, unknown, repeated, "
    "out of range or not clean text (`details` names them)",
    401: "`admin_unauthorized`: no bearer token, or one no admin holds",
    403: "`device_token`: a device's token (device credentials never read admin data); "
    "`admin_revoked`: the credential was revoked; `role_required`: a viewer asked for "
    "something only an admin may do",
    503: "`unavailable`: the database cannot serve the request now (the request is not "
    "logged, so it is not served either)",
}

_DEVICE_ID = {
    "in": "path",
    "name": "device_id",
    "required": True,
    "description": "the device's id",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
}


def add_admin_paths(spec: APISpec, error: Any) -> None:
    """Describe the admin endpoints and /metrics in ``spec``; ``error(text, status)`` makes
    an error response."""
    spec.components.security_scheme(
        ADMIN_TOKEN,
        {
            "type": "http",
            "scheme": "bearer",
            "description": "an admin credential (`fieldsync-server admins add`), not a "
            "device's token",
        },
    )
    for schema in (
        s.LogPageSchema,
        s.DataboxPageSchema,
        s.AdminCommandSchema,
        s.CommandsPageSchema,
        s.CommandRequestSchema,
    ):
        spec.components.schema(schema.__name__.removesuffix("Schema"), schema=schema)
    spec.path("/v1/admin/log", operations={"get": _get_log(error)})
    spec.path("/v1/admin/databox", operations={"get": _get_databox(error)})
    spec.path(
        "/v1/admin/devices/{device_id}/commands",
        operations={"post": _post_command(error), "get": _get_commands(error)},
    )
    spec.path("/metrics", operations={"get": _get_metrics(error)})


def _read(
    error: Any, operation: str, summary: str, query: type, page: str, **more: str
) -> dict[str, Any]:
    errors = {**_AUTH_ERRORS, **{int(k): v for k, v in more.items()}}
    return {
        "operationId": operation,
        "summary": summary,
        "security": [{ADMIN_TOKEN: []}],
        "parameters": [{"in": "query", "schema": query}],
        "responses": {
            "200": {"description": "a page", "content": {MEDIA_TYPE: {"schema": page}}},
            **{str(status): error(text, status) for status, text in sorted(errors.items())},
        },
    }


def _get_log(error: Any) -> dict[str, Any]:
    return _read(
        error,
        "getAdminLog",
        "Logged admin requests (who, when, from where, what, status), newest first; admins only.",
        s.LogQuerySchema,
        "LogPage",
    )


def _get_databox(error: Any) -> dict[str, Any]:
    return _read(
        error,
        "getFleetDatabox",
        "Parked entries across the fleet, oldest stuck first, with totals by reason.",
        s.DataboxQuerySchema,
        "DataboxPage",
    )


def _get_commands(error: Any) -> dict[str, Any]:
    operation = _read(
        error,
        "getDeviceCommands",
        "A device's commands and their outcomes, newest first.",
        s.CommandsQuerySchema,
        "CommandsPage",
        **{"404": "`unknown_device`: no device has this id"},
    )
    operation["parameters"].insert(0, _DEVICE_ID)
    return operation


def _post_command(error: Any) -> dict[str, Any]:
    errors = {
        **_AUTH_ERRORS,
        404: "`unknown_device`: no device has this id",
        409: "`command_conflict`: a command of the other kind for this entry is still open",
        413: f"`payload_too_large`: the body is over {MAX_ADMIN_BODY} bytes",
        415: "`unsupported_media_type`: Content-Type is not application/json",
    }
    answer = {"content": {MEDIA_TYPE: {"schema": "AdminCommand"}}}
    return {
        "operationId": "postDeviceCommand",
        "summary": "Send a device a command: resubmit a parked entry as it is, or discard it "
        "with a reason. It rides on the device's next sync answers until the device "
        "reports its outcome. Admins only.",
        "security": [{ADMIN_TOKEN: []}],
        "parameters": [_DEVICE_ID],
        "requestBody": {"required": True, "content": {MEDIA_TYPE: {"schema": "CommandRequest"}}},
        "responses": {
            "201": {"description": "queued", **answer},
            "200": {"description": "the same command was already open: it is that one", **answer},
            **{str(status): error(text, status) for status, text in sorted(errors.items())},
        },
    }


def _get_metrics(error: Any) -> dict[str, Any]:
    return {
        "operationId": "getMetrics",
        "summary": "Prometheus metrics, summed over the server's worker processes.",
        "security": [],
        "responses": {
            "200": {
                "description": "the Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "503": error("`unavailable`: the database does not answer", 503),
        },
    }
