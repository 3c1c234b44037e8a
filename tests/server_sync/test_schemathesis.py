"""schemathesis against a real ``fieldsync-server serve`` process, from the document it
serves: no 5xx, every response as documented, and nothing kept from a refused request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conflict import Hlc
from protocol import PROTOCOL_VERSION, compress
from protocol.codec import canonical_json
from server_sync.models import ops, records
from server_sync.openapi import OPENAPI_PATH
from simulations.procs import Enrolment, server_cli, server_process

#: Generated cases per operation and generation mode: the whole test stays around a
#: minute on a loaded 2-core machine (about 80 s with the admin API's five operations).
MAX_EXAMPLES = 50

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]

#: What invalid input may get: the 4xx statuses the document lists for the batches.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 413, 415, 426]}
        }
    }
)


@dataclass
class Run:
    """Calls cases against the live server and keeps every batch it accepted."""

    base_url: str
    session: requests.Session
    token: str
    admin_token: str
    accepted: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, set[int]] = field(default_factory=dict)

    def __call__(self, case: Case) -> None:
        token = self.admin_token if case.path.startswith("/v1/admin/") else self.token
        headers = {"Authorization": f"Bearer {token}"}
        response = case.call(
            base_url=self.base_url, session=self.session, headers=headers, timeout=30
        )
        case.validate_response(
            response,
            checks=CHECKS,
            headers=headers,
            transport_kwargs={"base_url": self.base_url, "headers": headers},
        )
        label = f"{case.method} {case.path}"
        self.statuses.setdefault(label, set()).add(response.status_code)
        if label == "POST /v1/batches" and response.status_code == 200:
            self.accepted.append(response.json())


def _fuzz(operation: Any, mode: GenerationMode, run: Run) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Case) -> None:
        run(case)

    fuzz()


def _good_batches(device: Enrolment) -> list[tuple[dict[str, Any], str]]:
    """Batches the server accepts (an applied one, a rejected one, a replay), and how
    each travels; generated input almost never hangs together this well."""

    def entry(seq: int, tx: str, tx_count: int, **fields: Any) -> dict[str, Any]:
        return {
            "op_id": f"00000000-0000-7000-8000-{seq:012d}",
            "device_id": device.device_id,
            "seq": seq,
            "tx_id": tx,
            "tx_count": tx_count,
            "hlc": str(Hlc(1_700_000_000_000, seq, device.device_id)),
            "collection": "customers",
            "record_id": f"c{seq}",
            "kind": "upsert",
            "fields": {"name": "Zhang Wei", **fields},
            "schema_version": 1,
        }

    def batch(batch_id: str, *entries: dict[str, Any]) -> dict[str, Any]:
        return {
            "protocol_version": PROTOCOL_VERSION,
            "batch_id": batch_id,
            "device_id": device.device_id,
            "entries": list(entries),
        }

    first = batch("b1", entry(1, "t1", 2), entry(2, "t1", 2), entry(3, "t2", 1, phone="12"))
    report_only = {**batch("b3"), "report": _report()}
    return [
        (first, "identity"),
        (first, "gzip"),
        (batch("b2", entry(4, "t3", 1)), "gzip"),
        (report_only, "identity"),
    ]


def _report() -> dict[str, Any]:
    """A protocol 2.1 report: a link going down and up, an attempt, an empty data box."""
    link = {"kind": "link", "channel": "wifi", "source": "os"}
    return {
        "sent_ms": 1_700_000_060_000,
        "journal": [
            {**link, "id": "e1", "at_ms": 1_700_000_000_000, "up": False},
            {**link, "id": "e2", "at_ms": 1_700_000_030_000, "up": True},
            {
                "kind": "attempt",
                "id": "e3",
                "at_ms": 1_700_000_040_000,
                "channel": "wifi",
                "started_ms": 1_700_000_039_000,
                "ended_ms": 1_700_000_040_000,
                "entries": 1,
                "bytes_sent": 900,
                "bytes_received": 120,
                "outcome": "ok",
                "server_time_ms": 1_700_000_040_500,
            },
        ],
        "databox": {
            "counts": {"pending": 0, "in_flight": 0, "parked": 0},
            "reasons": {},
            "parked": [],
        },
        "outcomes": [],
    }


def _send_good(schema: Any, device: Enrolment, run: Run) -> None:
    operation = schema["/v1/batches"]["POST"]
    for body, encoding in _good_batches(device):
        case = operation.Case(body=body, media_type="application/json")
        if encoding == "identity":
            run(case)
            continue
        # schemathesis sends bodies as they are; a device sends them gzipped.
        headers = {"Authorization": f"Bearer {run.token}", "Content-Encoding": "gzip"}
        response = run.session.post(
            f"{run.base_url}/v1/batches",
            data=compress(canonical_json(body)),
            headers={**headers, "Content-Type": "application/json"},
            timeout=30,
        )
        case.validate_response(response, checks=CHECKS, headers=headers)
        assert response.status_code == 200, response.text
        run.accepted.append(response.json())
    # A Content-Encoding the server does not read (415): generated headers seldom hit one,
    # and which statuses the fuzz reaches shifts whenever any schema changes.
    body, _ = _good_batches(device)[0]
    run(
        operation.Case(body=body, media_type="application/json", headers={"Content-Encoding": "br"})
    )


def _send_good_commands(schema: Any, device: Enrolment, run: Run) -> None:
    """A command for the real device (created, then the same again), and its listing."""
    post = schema["/v1/admin/devices/{device_id}/commands"]["POST"]
    body = {"kind": "discard", "op_id": "op-1", "reason": "entered twice"}
    for _ in range(2):
        run(
            post.Case(
                path_parameters={"device_id": device.device_id},
                body=body,
                media_type="application/json",
            )
        )
    get = schema["/v1/admin/devices/{device_id}/commands"]["GET"]
    run(get.Case(path_parameters={"device_id": device.device_id}))


@contextmanager
def _printing(log: Path) -> Iterator[None]:
    """Show the server's output when the block fails."""
    try:
        yield
    except BaseException:
        print(f"--- server log {log} ---\n{log.read_text(errors='replace')}")
        raise


def _stored(database_url: str) -> tuple[set[str], int]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            op_ids = set(conn.execute(sa.select(ops.c.op_id)).scalars())
            fields = conn.execute(sa.select(sa.func.count()).select_from(records)).scalar()
    finally:
        engine.dispose()
    return op_ids, int(fields or 0)


def _new_in(acks: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """op_ids first answered in these acks (not duplicates), and those of them applied."""
    first = [r for ack in acks for r in ack["results"] if r["status"] != "duplicate"]
    return {r["op_id"] for r in first}, {r["op_id"] for r in first if r["status"] == "applied"}


@pytest.mark.slow
def test_the_live_server_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    log = tmp_path / "server.log"
    server_cli("db", "upgrade", database_url=url)
    with server_process(url, log=log) as server, _printing(log), requests.Session() as session:
        device = server.enrol("schemathesis")
        admin = json.loads(
            server_cli("admins", "add", "fuzz", "--role", "admin", "--json", database_url=url)
        )
        # Loaded from the served bytes (from_url would leave out the operation serving it).
        served = session.get(f"{server.url}{OPENAPI_PATH}", timeout=30).json()
        schema = schemathesis.openapi.from_dict(served, config=CONFIG)
        run = Run(server.url, session, device.token, admin["token"])
        _send_good(schema, device, run)
        _send_good_commands(schema, device, run)
        for result in schema.get_all_operations():
            operation = result.ok()
            _fuzz(operation, GenerationMode.POSITIVE, run)
            if operation.body or any(True for _ in operation.iter_parameters()):
                _fuzz(operation, GenerationMode.NEGATIVE, run)  # something to negate

    new, applied = _new_in(run.accepted)
    stored, field_rows = _stored(url)
    assert stored == new  # every op stored was answered in a 200; refused requests left none
    assert len(applied) >= 2 and field_rows > 0
    commands = "/v1/admin/devices/{device_id}/commands"
    assert set(run.statuses) == {
        "POST /v1/batches",
        "GET /healthz",
        f"GET {OPENAPI_PATH}",
        "GET /metrics",
        "GET /v1/admin/log",
        "GET /v1/admin/databox",
        f"GET {commands}",
        f"POST {commands}",
    }
    assert run.statuses["POST /v1/batches"] >= {200, 400, 401, 415}, run.statuses
    assert run.statuses[f"POST {commands}"] >= {200, 201, 400, 404}, run.statuses
    assert run.statuses["GET /v1/admin/databox"] >= {200, 400}, run.statuses
