"""The OpenAPI document: every route and nothing else, the protocol's own schemas, and
every status the server really answers described with the body it really sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from werkzeug.test import TestResponse

from protocol import encode_batch
from protocol._schemas import AckSchema, BatchSchema
from protocol.constants import MAX_WIRE_BYTES
from server_sync import add_device, create_app
from server_sync.extension import server_state
from server_sync.openapi import OPENAPI_PATH, document
from tests.server_sync.conftest import Wire

#: Flask's own methods on every rule, not operations of ours.
_IMPLICIT = {"HEAD", "OPTIONS"}


def _routes(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        found |= {(path, m) for m in (rule.methods or set()) - _IMPLICIT}
    return found


def _operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in doc["paths"].items() for method in item}


def test_it_is_served_and_is_a_valid_openapi_3_1_document(wire: Wire) -> None:
    response = wire.client.get(OPENAPI_PATH)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    served = response.json
    assert served == document()
    assert served["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(served).validate()  # raises on an invalid document


def test_every_route_is_described_and_nothing_else(app: Flask) -> None:
    assert _routes(app) == _operations(document())


def test_the_wire_schemas_are_the_protocols_own() -> None:
    """Generated from the schemas that decode batches and acks, not a hand-kept copy."""
    fresh = APISpec("x", "1", "3.1.0", plugins=[MarshmallowPlugin()])
    fresh.components.schema("Batch", schema=BatchSchema)
    fresh.components.schema("Ack", schema=AckSchema)
    expected = fresh.to_dict()["components"]["schemas"]
    ours = document()["components"]["schemas"]
    for name in ("Batch", "Ack", "Result"):
        assert ours[name] == expected[name]
    # apispec writes a Dict's Length as maxLength; the document says maxProperties.
    entry = expected["Entry"]
    fields = dict(entry["properties"]["fields"])
    fields["maxProperties"] = fields.pop("maxLength")
    assert ours["Entry"] == {**entry, "properties": {**entry["properties"], "fields": fields}}
    post = document()["paths"]["/v1/batches"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Batch"
    }
    assert post["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Ack"
    }
    assert post["security"] == [{"deviceToken": []}]
    assert document()["components"]["securitySchemes"]["deviceToken"]["scheme"] == "bearer"


def test_the_documented_batch_schema_refuses_what_the_decoder_refuses(wire: Wire) -> None:
    valid = json.loads(encode_batch(wire.batch(wire.entry(1))))
    assert _validator("Batch").is_valid(valid)
    for member in ("tx_count", "seq", "op_id"):
        entry = dict(valid["entries"][0])
        del entry[member]
        assert not _validator("Batch").is_valid({**valid, "entries": [entry]}), member


# --- every status the server gives ---------------------------------------------------


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Flask]:
    """An app that sheds a device's second batch within an hour."""
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'limited.db'}",
            "RATE_LIMIT_DEVICE": 1,
            "RATE_LIMIT_WINDOW": 3600,
        }
    )
    yield app
    server_state(app).engine.dispose()


@pytest.fixture
def no_database(tmp_path: Path) -> Iterator[Flask]:
    """An app whose database cannot be opened."""
    app = create_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'missing' / 'x.db'}", "AUTO_UPGRADE": False}
    )
    yield app
    server_state(app).engine.dispose()


def _enrolled(app: Flask) -> Wire:
    with server_state(app).engine.begin() as conn:
        device_id, token = add_device(conn, "phone")
    return Wire(app.test_client(), device_id, token)


def test_every_status_post_batches_gives_is_documented_with_its_body(
    wire: Wire, limited: Flask, no_database: Flask
) -> None:
    stranger = Wire(wire.client, "someone-else", wire.token)  # another device's id, our token
    shed = _enrolled(limited)
    shed.ack(shed.batch(shed.entry(1)))
    answers = [
        wire.post(wire.batch(wire.entry(1))),
        wire.post(b"{not json"),
        wire.post(wire.batch(wire.entry(1)), token="nobody"),
        stranger.post(stranger.batch(stranger.entry(1))),
        wire.post(b"x" * (MAX_WIRE_BYTES + 1), encoding="identity"),
        wire.post(wire.batch(wire.entry(1)), headers={"Content-Type": "text/plain"}),
        wire.post(wire.batch(wire.entry(1), version="1.0")),
        shed.post(shed.batch(shed.entry(2))),
        Wire(no_database.test_client(), "d", "t").post(wire.batch(wire.entry(1))),
    ]
    given = {r.status_code for r in answers}
    documented = set(map(int, document()["paths"]["/v1/batches"]["post"]["responses"]))
    assert given == documented
    for response in answers:
        _conforms(response, "/v1/batches", "post")


def test_every_status_healthz_gives_is_documented_with_its_body(
    wire: Wire, no_database: Flask
) -> None:
    answers = [wire.client.get("/healthz"), no_database.test_client().get("/healthz")]
    assert {r.status_code for r in answers} == {200, 503}
    for response in answers:
        _conforms(response, "/healthz", "get")


def _conforms(response: TestResponse, path: str, method: str) -> None:
    """The response's status, media type, body and required headers are as documented."""
    described = document()["paths"][path][method]["responses"][str(response.status_code)]
    assert response.mimetype == "application/json"
    schema = described["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    body = json.loads(response.get_data())  # test client inflates nothing: gzip is off
    _validator(name).validate(body)
    for header, spec in described.get("headers", {}).items():
        if spec.get("required"):
            assert int(response.headers[header]) >= 0


def _validator(name: str) -> jsonschema_rs.Draft202012Validator:
    components = document()["components"]
    return jsonschema_rs.Draft202012Validator(
        {"components": components, "$ref": f"#/components/schemas/{name}"}
    )
