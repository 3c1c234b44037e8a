"""Protocol 2.1 at the server: a batch may carry a report, and carry only a report."""

from __future__ import annotations

import sqlalchemy as sa

from protocol import Batch, encode_batch
from protocol.model import Databox, DataboxCounts, LinkEvent, Report

from .conftest import Wire, error_of, rows


def report(*events: LinkEvent) -> Report:
    """A report of ``events`` and an empty data box."""
    return Report(1_700_000_000_000, events, Databox(DataboxCounts(0, 0, 0), {}, ()), ())


def test_a_report_only_batch_is_accepted(wire: Wire) -> None:
    batch = Batch("2.1", "b-r", wire.device_id, (), report())
    ack = wire.ack(batch)
    assert ack.batch_id == "b-r" and ack.results == ()


def test_entries_next_to_a_report_are_applied_as_before(wire: Wire) -> None:
    plain = wire.batch(wire.entry(1))
    batch = Batch("2.1", plain.batch_id, wire.device_id, plain.entries, report())
    ack = wire.ack(batch)
    assert [r.status for r in ack.results] == ["applied"]


def test_a_2_0_batch_is_still_accepted(wire: Wire) -> None:
    ack = wire.ack(wire.batch(wire.entry(1), version="2.0"))
    assert [r.status for r in ack.results] == ["applied"]


def test_a_report_under_2_0_and_an_empty_batch_are_refused_and_change_nothing(
    wire: Wire, engine: sa.Engine
) -> None:
    before = rows(engine)
    for batch, where in (
        (Batch("2.0", "b-1", wire.device_id, (wire.entry(1, tx_count=1),), report()), "report"),
        (Batch("2.1", "b-2", wire.device_id, ()), "entries"),
    ):
        response = wire.post(encode_batch(batch), encoding="identity")
        assert response.status_code == 400
        assert where in error_of(response)["details"]
    assert rows(engine) == before
