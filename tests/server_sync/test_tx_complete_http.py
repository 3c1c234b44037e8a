"""Over HTTP, a batch that does not carry each transaction whole is refused whole."""

from __future__ import annotations

import dataclasses
import json

import sqlalchemy as sa

from protocol.codec import canonical_json, compress, encode_batch
from tests.server_sync.conftest import Wire, error_of, rows


def test_the_server_refuses_a_split_transaction_whole(wire: Wire, engine: sa.Engine) -> None:
    before = rows(engine)
    batch = wire.batch(
        wire.entry(1, tx="t1", tx_count=1),
        wire.entry(2, tx="t2", record_id="c2", tx_count=2),  # its sibling is not here
        wire.entry(3, tx="t3", record_id="c3", tx_count=1),
    )

    response = wire.post(batch)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "malformed_batch"
    assert "tx_count is 2, the batch carries 1" in error["details"]["entries"][0]
    assert rows(engine) == before  # not even the whole transactions t1 and t3


def test_a_1x_batch_without_tx_count_is_told_to_upgrade(wire: Wire, engine: sa.Engine) -> None:
    before = rows(engine)
    plain = json.loads(encode_batch(wire.batch(wire.entry(1))))
    plain["protocol_version"] = "1.0"
    del plain["entries"][0]["tx_count"]  # exactly what a 1.x app build sends

    response = wire.post(compress(canonical_json(plain)))

    assert response.status_code == 426
    assert error_of(response)["code"] == "upgrade_required"
    assert rows(engine) == before


def test_a_replay_with_another_tx_count_is_a_duplicate(wire: Wire) -> None:
    """An op stored before the device's upgrade (no tx_count then) is the same entry after."""
    first = wire.entry(1, tx="t1")
    wire.ack(wire.batch(first, wire.entry(2, tx="t1", record_id="c2")))  # tx_count 2

    ack = wire.ack(wire.batch(dataclasses.replace(first, tx_count=1)))

    assert ack.results[0].status == "duplicate"
    assert ack.results[0].outcome.status == "applied"
