"""The admin endpoints and /metrics in the OpenAPI document: every status they answer is
documented, with the body they really send."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema_rs
import pytest
from flask import Flask
from werkzeug.test import TestResponse

from server_sync import create_app
from server_sync.admin import MAX_ADMIN_BODY
from server_sync.extension import server_state
from server_sync.openapi import document
from tests.server_sync.admin_helpers import AdminClient, admin_client
from tests.server_sync.conftest import Wire

COMMANDS = "/v1/admin/devices/{device_id}/commands"


@pytest.fixture
def no_database(tmp_path: Path) -> Iterator[Flask]:
    """An app whose database cannot be opened."""
    app = create_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'missing' / 'x.db'}", "AUTO_UPGRADE": False}
    )
    yield app
    server_state(app).engine.dispose()


def _documented(path: str, method: str) -> set[int]:
    return set(map(int, document()["paths"][path][method]["responses"]))


def _conforms(response: TestResponse, path: str, method: str) -> None:
    described = document()["paths"][path][method]["responses"][str(response.status_code)]
    schema = described["content"][response.mimetype]["schema"]
    if "$ref" not in schema:
        return
    name = schema["$ref"].rsplit("/", 1)[-1]
    validator = jsonschema_rs.Draft202012Validator(
        {"components": document()["components"], "$ref": f"#/components/schemas/{name}"}
    )
    validator.validate(json.loads(response.get_data()))


def _check(answers: list[TestResponse], path: str, method: str) -> None:
    assert {a.status_code for a in answers} == _documented(path, method)
    for answer in answers:
        _conforms(answer, path, method)


def _refusals(app: Flask, wire: Wire, down: Flask, path: str) -> list[TestResponse]:
    """400, 401, 403 and 503 on GET ``path``."""
    return [
        admin_client(app).get(f"{path}?limit=0"),
        AdminClient(app.test_client(), "nobody").get(path),
        AdminClient(app.test_client(), wire.token).get(path),
        AdminClient(down.test_client(), "nobody").get(path),
    ]


def test_the_log_and_the_databox_answer_as_documented(
    app: Flask, wire: Wire, no_database: Flask
) -> None:
    for path in ("/v1/admin/log", "/v1/admin/databox"):
        answers = [admin_client(app).get(path), *_refusals(app, wire, no_database, path)]
        _check(answers, path, "get")


def test_the_command_endpoints_answer_as_documented(
    app: Flask, wire: Wire, no_database: Flask
) -> None:
    boss = admin_client(app)
    mine = COMMANDS.format(device_id=wire.device_id)
    good = {"kind": "discard", "op_id": "op-1", "reason": "entered twice"}
    posts = [
        boss.command(wire.device_id, good),
        boss.command(wire.device_id, good),
        boss.command(wire.device_id, {"kind": "wipe", "op_id": "x"}),
        AdminClient(app.test_client(), "nobody").command(wire.device_id, good),
        admin_client(app, "viewer", "v").command(wire.device_id, good),
        boss.command("nobody", good),
        boss.command(wire.device_id, {"kind": "resubmit", "op_id": "op-1"}),
        boss.command(
            wire.device_id, data=b"x" * (MAX_ADMIN_BODY + 1), content_type="application/json"
        ),
        boss.command(wire.device_id, data=b"{}", content_type="text/plain"),
        AdminClient(no_database.test_client(), "x").command(wire.device_id, good),
    ]
    _check(posts, COMMANDS, "post")
    gets = [
        boss.get(mine),
        *_refusals(app, wire, no_database, mine),
        boss.get(COMMANDS.format(device_id="nobody")),
    ]
    _check(gets, COMMANDS, "get")


def test_metrics_answers_as_documented(app: Flask, no_database: Flask) -> None:
    answers = [app.test_client().get("/metrics"), no_database.test_client().get("/metrics")]
    assert answers[0].mimetype == "text/plain"
    _check(answers, "/metrics", "get")


def test_admin_operations_need_the_admin_scheme_not_the_devices() -> None:
    doc = document()
    assert doc["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    for path in ("/v1/admin/log", "/v1/admin/databox", COMMANDS):
        for operation in doc["paths"][path].values():
            assert operation["security"] == [{"adminToken": []}]
    assert doc["paths"]["/metrics"]["get"]["security"] == []
