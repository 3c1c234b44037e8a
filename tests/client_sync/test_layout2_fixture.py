"""An outbox written by the release before issue 8 (layout 2) opens and drains.

The fixture was made by tests/fixtures/make_outbox_layout2.py at commit e1e36b0; its
JSON lists every row with its state and the entry bytes that release sent.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from client_sync import HttpChannel, State, SyncClient
from conflict import hlc
from protocol.codec import assemble_batch, decode_batch
from tests._doubles import BAD, FakeClock, RealServer, lenient_registry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NAME = "outbox_layout2"


class Recording(httpx.BaseTransport):
    """Pass requests to the app; keep every batch body as sent (inflated)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(gzip.decompress(request.read()))
        return self.inner.handle_request(request)


@pytest.fixture
def listing() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{NAME}.json").read_text())
    return loaded


@pytest.fixture
def old_outbox(tmp_path: Path) -> Path:
    """A copy of the fixture (opening an outbox writes to it)."""
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / f"{NAME}.db", path)
    return path


@pytest.fixture
def real(tmp_path: Path) -> Iterator[RealServer]:
    server = RealServer(tmp_path / "server.db")
    yield server
    server.close()


def _key() -> bytes:
    return bytes.fromhex((FIXTURES / f"{NAME}.key").read_text().strip())


def _by_state(listing: dict[str, Any], *states: str) -> list[dict[str, Any]]:
    return [r for r in listing["rows"] if r["state"] in states]


def test_old_outbox_opens_and_drains_the_bytes_it_would_have_sent(
    old_outbox: Path, listing: dict[str, Any], real: RealServer
) -> None:
    device = real.enrol_as(listing["meta"]["device_id"])
    transport = Recording(real.transport())
    channel = HttpChannel("wifi", "http://fieldsync.test", device.token, transport=transport)
    with SyncClient(
        old_outbox,
        _key(),
        device_id=device.device_id,
        channels=[channel],
        registry=lenient_registry(),
        clock=FakeClock(),
    ) as client:
        # The crash left a batch in flight: reopening put it back to pending.
        stats = client.stats()
        assert stats[State.IN_FLIGHT] == 0
        assert stats[State.PENDING] == len(_by_state(listing, "pending", "in_flight")) == 6
        assert (stats[State.ACKED], stats[State.PARKED], stats[State.DISCARDED]) == (6, 2, 1)

        report = client.sync_now()
        assert (report.remaining, report.sent, report.applied) == (0, 6, 6)
        waiting = _by_state(listing, "pending", "in_flight")
        assert real.applied(device) == {r["op_id"] for r in waiting}
        # Byte for byte what the old release would have sent, in seq order.
        [body] = transport.bodies
        batch = decode_batch(body)
        expected = [r["entry"].encode() for r in waiting]
        assert body == assemble_batch(
            batch.protocol_version, batch.batch_id, batch.device_id, expected, batch.report
        )

        # The data box survived: the parked pair resubmits, the discard is audited.
        parked = client.parked()
        assert [e.op_id for e in parked] == [r["op_id"] for r in _by_state(listing, "parked")]
        assert [a["action"] for a in client.audit_log()] == ["discard"]
        bad = next(e for e in parked if e.fields["notes"] == BAD["notes"])
        client.resubmit(bad.op_id, {**bad.fields, "notes": "short now"})
        assert client.sync_now().applied == 2

        # seq and the HLC go on from where the old release left them.
        op_id = client.record("customers", "c-new", {"name": "After"})
        new = client.entry(op_id)
        assert new.seq == int(listing["meta"]["next_seq"]) + 2
        assert hlc.parse(new.hlc) > hlc.parse(listing["meta"]["last_hlc"])
