"""The OpenAPI 3.1 description of the HTTP API, generated from the marshmallow schemas.

The wire messages are described by the very schemas that decode them
(``protocol._schemas``), converted by apispec; only the error body and the health
answer, which have no protocol message, get small schemas of their own here. A
test holds the document to ``app.url_map`` (every route described, nothing else)
and a schemathesis run holds the live server to the document.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, cast

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, jsonify
from marshmallow import Schema, fields, validate

# The decoding schemas themselves (not re-exported by protocol: only this reads them).
from protocol._schemas import EVENT_SCHEMAS, AckSchema, BatchSchema, EventField
from protocol.constants import CONTENT_ENCODINGS, MAX_WIRE_BYTES, MEDIA_TYPE, PROTOCOL_VERSION

from .admin_openapi import add_admin_paths

#: Where the document is served.
OPENAPI_PATH = "/v1/openapi.json"

#: The security scheme of a device's bearer token.
DEVICE_TOKEN = "deviceToken"

openapi = Blueprint("openapi", __name__)


class ErrorBodySchema(Schema):
    """What went wrong: a machine code, a sentence for people, and the particulars."""

    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorSchema(Schema):
    """Every error the server answers, whatever its status."""

    error = fields.Nested(ErrorBodySchema, required=True)


class HealthSchema(Schema):
    """The health answer."""

    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


#: Every error status POST /v1/batches answers, and the codes it carries.
BATCH_ERRORS: dict[int, str] = {
    400: "`malformed_batch`: not a valid batch (not JSON, bad gzip, a member missing or "
    "out of range, a transaction not carried whole; `details` names the members); "
    "`bad_request`: a request werkzeug could not read",
    401: "`unauthorized`: no bearer token, or one no device holds",
    403: "`device_revoked`: the device was revoked; `wrong_device`: a batch sent as another device",
    413: f"`payload_too_large`: the body is over {MAX_WIRE_BYTES} bytes as sent",
    415: "`unsupported_media_type`: Content-Type is not application/json, or the "
    "Content-Encoding is not one of " + ", ".join(CONTENT_ENCODINGS),
    426: "`upgrade_required`: another protocol major, or a schema version this server "
    "does not read; the device keeps its entries",
    429: "`rate_limited`: over the load-shedding limit; come back after Retry-After",
    503: "`unavailable`: the database cannot serve the request now; retry after Retry-After",
}

#: Statuses that always come with a Retry-After header (seconds).
RETRY_AFTER = frozenset((429, 503))


@openapi.get(OPENAPI_PATH)
def openapi_json() -> Response:
    """This API's OpenAPI document."""
    return jsonify(document())


def document() -> dict[str, Any]:
    """The OpenAPI document of every route the server has (a copy: yours to change)."""
    return copy.deepcopy(_document())


@functools.cache
def _document() -> dict[str, Any]:
    marshmallow = MarshmallowPlugin()
    spec = APISpec(
        title="fieldsync sync server",
        version=PROTOCOL_VERSION,
        openapi_version="3.1.0",
        plugins=[marshmallow],
        info={"description": "Devices upload batches of whole transactions; see docs/."},
    )
    assert marshmallow.converter is not None  # set when the spec took the plugin
    marshmallow.converter.add_attribute_function(_one_of_events)  # type: ignore[no-untyped-call]
    for kind, event_schema in EVENT_SCHEMAS.items():
        spec.components.schema(_event_component(kind), schema=event_schema)
    spec.components.security_scheme(
        DEVICE_TOKEN,
        {"type": "http", "scheme": "bearer", "description": "a device's enrolment token"},
    )
    for name, schema in (
        ("Batch", BatchSchema),
        ("Ack", AckSchema),
        ("Error", ErrorSchema),
        ("Health", HealthSchema),
    ):
        spec.components.schema(name, schema=schema)
    spec.path("/v1/batches", operations={"post": _post_batches()})
    spec.path("/healthz", operations={"get": _get_healthz()})
    spec.path(OPENAPI_PATH, operations={"get": _get_openapi()})
    add_admin_paths(spec, _error)
    return cast(dict[str, Any], _object_sizes(spec.to_dict()))


def _event_component(kind: str) -> str:
    return f"{kind.capitalize()}Event"


def _one_of_events(_converter: Any, field: Any, ret: Any, **_: Any) -> dict[str, Any]:
    """A journal event is one of the kinds' schemas, told apart by ``kind``."""
    if not isinstance(field, EventField):
        return {}
    refs = {kind: f"#/components/schemas/{_event_component(kind)}" for kind in EVENT_SCHEMAS}
    return {
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "kind", "mapping": refs},
    }


def _post_batches() -> dict[str, Any]:
    return {
        "operationId": "postBatch",
        "summary": "Apply a device's batch; one result per entry, in batch order.",
        "security": [{DEVICE_TOKEN: []}],
        "parameters": [
            {
                "in": "header",
                "name": "Content-Encoding",
                "required": False,
                "description": "How the body is compressed (absent: identity).",
                "schema": {"type": "string", "enum": list(CONTENT_ENCODINGS)},
            }
        ],
        "requestBody": {"required": True, "content": {MEDIA_TYPE: {"schema": "Batch"}}},
        "responses": {
            "200": {
                "description": "Every entry answered (a replay gets the same answers); "
                "gzipped when the request accepts gzip.",
                "content": {MEDIA_TYPE: {"schema": "Ack"}},
            },
            **{str(status): _error(text, status) for status, text in BATCH_ERRORS.items()},
        },
    }


def _get_healthz() -> dict[str, Any]:
    return {
        "operationId": "getHealthz",
        "summary": "Whether the server and its database answer.",
        "security": [],
        "responses": {
            "200": {"description": "ok", "content": {MEDIA_TYPE: {"schema": "Health"}}},
            "503": _error("`unavailable`: the database does not answer", 503),
        },
    }


def _get_openapi() -> dict[str, Any]:
    return {
        "operationId": "getOpenapi",
        "summary": "This document.",
        "security": [],
        "responses": {
            "200": {
                "description": "The OpenAPI 3.1 document",
                "content": {MEDIA_TYPE: {"schema": {"type": "object"}}},
            }
        },
    }


def _error(description: str, status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": "Error"}},
    }
    if status in RETRY_AFTER:
        response["headers"] = {
            "Retry-After": {
                "description": "seconds to wait before sending again",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return response


def _object_sizes(node: Any) -> Any:
    """apispec writes a Length on a Dict field as min/maxLength; JSON Schema says Properties."""
    if isinstance(node, list):
        return [_object_sizes(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _object_sizes(v) for k, v in node.items()}
    if out.get("type") == "object":
        for length, size in (("minLength", "minProperties"), ("maxLength", "maxProperties")):
            if length in out:
                out[size] = out.pop(length)
    return out
