"""schemathesis on the audit endpoints, in process, with an admin's token: no 5xx, every
answer as documented, hostile queries refused with a documented 4xx."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from server_sync import create_app
from server_sync.extension import server_state
from server_sync.openapi import OPENAPI_PATH
from server_sync.report import store_report

from .audit_helpers import Device, M, admin_token, enrol

#: No negative_data_rejection: the admin token is put back on every case (else all would
#: be 401), which can undo a case's only negation (a dropped Authorization header).
#: Refusals of hostile queries are proved by test_audit_api.py; here, no 5xx and every
#: answer as documented, and a 400 seen on every operation.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
PATHS = (
    "/v1/admin/devices",
    "/v1/admin/devices/{device_id}/audit",
    "/v1/admin/devices/{device_id}/events",
)


@pytest.mark.slow
def test_the_audit_endpoints_conform_to_the_document(tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", "TESTING": True})
    try:
        token = admin_token(app, "viewer")
        device_id = _a_device_with_a_journal(app)
        schema = schemathesis.openapi.from_wsgi(OPENAPI_PATH, app)
        statuses: dict[str, set[int]] = {}
        for path in PATHS:
            operation = schema[path]["GET"]
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz(operation, mode, token, device_id, statuses)
    finally:
        server_state(app).engine.dispose()
    for path in PATHS:
        assert 200 in statuses[path] and 400 in statuses[path], (path, statuses[path])


def _a_device_with_a_journal(app: Any) -> str:
    device_id, _ = enrol(app)
    device = Device(device_id, ahead_ms=-M)
    t = int(time.time() * 1000)
    batch = device.batch(
        t,
        [
            device.link(t - 90 * M, True),
            device.link(t - 60 * M, False),
            device.attempt(t - 50 * M, "timeout"),
            device.link(t - 30 * M, True),
            device.attempt(t - 20 * M),
            device.status(t - 10 * M, queue_depth=2),
        ],
        parked_ages=(30,),
    )
    with server_state(app).engine.begin() as conn:
        store_report(conn, device_id, batch, t)
    return device_id


def _fuzz(
    operation: Any, mode: GenerationMode, token: str, device_id: str, statuses: dict[str, set[int]]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}

    @settings(
        max_examples=60,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Case) -> None:
        if case.path_parameters and mode is GenerationMode.POSITIVE and len(str(case.query)) % 2:
            case.path_parameters["device_id"] = device_id  # half of them about a real device
        if mode is GenerationMode.POSITIVE and case.query and len(str(case.query)) % 3 == 0:
            case.query = {}  # the defaults: a real 200 now and then
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)
        statuses.setdefault(operation.path, set()).add(response.status_code)

    fuzz()
