"""The audit endpoints in the OpenAPI document (``openapi._document`` calls in).

Query strings and answers are described by the very schemas that load and dump them
(``audit_schemas``); every status a view can answer is listed with its codes.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from protocol.constants import MAX_ID_LENGTH, MEDIA_TYPE

from . import audit_schemas as s
from .admin_openapi import ADMIN_TOKEN

#: Refusals every audit endpoint may answer.
_ERRORS: dict[int, str] = {
    400: "`invalid_request`: a query parameter unknown, repeated, not ASCII digits, or out "
    "of range (`details` names it)",
    401: "`admin_unauthorized`: no bearer token, or one no admin holds",
    403: "`device_token`: a device's token (device credentials never read admin data); "
    "`admin_revoked`: the credential was revoked",
    503: "`unavailable`: the database cannot serve the request now",
}

_DEVICE_ID = {
    "in": "path",
    "name": "device_id",
    "required": True,
    "description": "the device's id",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
}

_UNKNOWN = {404: "`unknown_device`: no device has that id"}


def add_audit_paths(spec: APISpec, error: Any) -> None:
    """Describe the fleet view, a device's audit and its journal in ``spec``;
    ``error(text, status)`` makes an error response. Call after ``add_admin_paths``,
    which registers the ``adminToken`` scheme and the command schema the audit nests."""
    for schema in (s.FleetPageSchema, s.AuditSchema, s.EventsPageSchema):
        spec.components.schema(schema.__name__.removesuffix("Schema"), schema=schema)
    spec.path(
        "/v1/admin/devices",
        operations={
            "get": _read(
                error,
                "getDevices",
                summary="The fleet: one row per device, sorted (most offline, highest failure "
                "rate, longest unseen, deepest queue, oldest stuck entry) and filtered, by cursor.",
                query=s.FleetQuerySchema,
                answer="FleetPage",
                more={},
            )
        },
    )
    spec.path(
        "/v1/admin/devices/{device_id}/audit",
        operations={
            "get": _read(
                error,
                "getDeviceAudit",
                summary="One device over a window (default 72 h): online, offline and unknown "
                "time, offline periods, attempts by outcome, submissions, data box, versions.",
                query=s.AuditQuerySchema,
                answer="Audit",
                more=_UNKNOWN,
                device=True,
            )
        },
    )
    spec.path(
        "/v1/admin/devices/{device_id}/events",
        operations={
            "get": _read(
                error,
                "getDeviceEvents",
                summary="One device's journal in server-time order, a page at a time.",
                query=s.EventsQuerySchema,
                answer="EventsPage",
                more=_UNKNOWN,
                device=True,
            )
        },
    )


def _read(
    error: Any,
    operation: str,
    *,
    summary: str,
    query: type,
    answer: str,
    more: dict[int, str],
    device: bool = False,
) -> dict[str, Any]:
    parameters: list[Any] = [{"in": "query", "schema": query}]
    if device:
        parameters.insert(0, _DEVICE_ID)
    return {
        "operationId": operation,
        "summary": summary,
        "security": [{ADMIN_TOKEN: []}],
        "parameters": parameters,
        "responses": {
            "200": {"description": summary, "content": {MEDIA_TYPE: {"schema": answer}}},
            **{str(status): error(text, status) for status, text in {**_ERRORS, **more}.items()},
        },
    }
