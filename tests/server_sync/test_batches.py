"""Batch apply over HTTP: applied, replayed, rejected all-or-nothing, never blocking."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from flask import Flask

from protocol import Ack, Result, decode_ack
from server_sync import create_app, get_record
from server_sync.extension import server_state
from tests.server_sync.conftest import Wire, rows, stamp


def record(engine: sa.Engine, record_id: str, collection: str = "customers") -> object:
    with engine.connect() as conn:
        return get_record(conn, collection, record_id)


def test_new_entries_are_applied_with_normalised_fields(wire: Wire, engine: sa.Engine) -> None:
    ack = wire.ack(wire.batch(wire.entry(1), wire.entry(2, tx="t2", record_id="c2")))

    assert [r.status for r in ack.results] == ["applied", "applied"]
    assert [r.op_id for r in ack.results] == ["op-1", "op-2"]
    assert record(engine, "c1") == {
        "name": "Zhang Wei",
        "phone": "13800138000",
        "email": None,
        "address": None,
        "notes": None,
    }
    assert len(rows(engine)["ops"]) == 2


def test_replay_gets_the_same_answer_and_changes_nothing(wire: Wire, engine: sa.Engine) -> None:
    batch = wire.batch(
        wire.entry(1),
        wire.entry(2, fields={"name": "x" * 101}),  # rejects t1
        wire.entry(3, tx="t2", record_id="c2"),
    )
    first = wire.ack(batch)
    state = rows(engine)

    second = wire.ack(batch)
    third = wire.post(batch)

    assert [r.status for r in second.results] == ["duplicate"] * 3
    assert [r.original for r in second.results] == list(first.results)
    assert [r.outcome for r in second.results] == [r.outcome for r in first.results]
    # The same answer each time; only the server's clock reading (server_time_ms) moves.
    fourth = decode_ack(wire.post(batch).get_data())
    assert decode_ack(third.get_data()).results == fourth.results == second.results
    assert rows(engine) == state


def test_replay_after_a_restart_is_answered_from_the_database(
    wire: Wire, app: Flask, sqlite_url: str
) -> None:
    batch = wire.batch(wire.entry(1))
    first = wire.ack(batch)

    restarted = create_app({"DATABASE_URL": sqlite_url})
    try:
        again = Wire(restarted.test_client(), wire.device_id, wire.token).ack(batch)
    finally:
        server_state(restarted).engine.dispose()

    assert again.results[0].status == "duplicate"
    assert again.results[0].original == first.results[0]


def test_an_invalid_entry_rejects_its_whole_transaction(wire: Wire, engine: sa.Engine) -> None:
    batch = wire.batch(
        wire.entry(1, record_id="c1"),
        wire.entry(2, record_id="c2", fields={"name": "Li", "phone": "12345"}),
        wire.entry(3, record_id="c3"),
    )
    ack = wire.ack(batch)

    ok1, bad, ok3 = ack.results
    assert (bad.status, bad.code, bad.field) == ("rejected", "invalid_phone", "phone")
    assert bad.message
    for sibling in (ok1, ok3):
        assert (sibling.status, sibling.code) == ("rejected", "tx_rejected")
        assert sibling.message is not None and "op-2" in sibling.message
    assert [record(engine, r) for r in ("c1", "c2", "c3")] == [None, None, None]
    assert rows(engine)["records"] == []
    # The verdicts are stored, so a replay is answered the same, not re-judged.
    assert [r.original for r in wire.ack(batch).results] == list(ack.results)


def test_several_invalid_entries_each_say_why(wire: Wire) -> None:
    ack = wire.ack(
        wire.batch(
            wire.entry(1, fields={"name": None}),
            wire.entry(2, fields={"name": "ok", "colour": "red"}),
            wire.entry(3),
        )
    )
    assert [(r.code, r.field) for r in ack.results] == [
        ("required", "name"),
        ("unknown_field", "colour"),
        ("tx_rejected", None),
    ]


def test_a_rejected_transaction_blocks_nothing_behind_it(wire: Wire, engine: sa.Engine) -> None:
    ack = wire.ack(
        wire.batch(
            wire.entry(1, tx="t1", record_id="c1"),
            wire.entry(2, tx="t2", record_id="c2", fields={"name": 5}),
            wire.entry(3, tx="t2", record_id="c2b"),
            wire.entry(4, tx="t3", collection="nowhere", fields={}),
            wire.entry(5, tx="t4", record_id="c4"),
        )
    )

    assert [(r.op_id, r.status, r.code) for r in ack.results] == [
        ("op-1", "applied", None),
        ("op-2", "rejected", "wrong_type"),
        ("op-3", "rejected", "tx_rejected"),
        ("op-4", "rejected", "unknown_collection"),
        ("op-5", "applied", None),
    ]
    assert record(engine, "c1") is not None
    assert record(engine, "c4") is not None
    assert record(engine, "c2") is None
    assert record(engine, "c2b") is None


def test_an_op_id_reused_for_other_content_is_rejected_not_swallowed(
    wire: Wire, engine: sa.Engine
) -> None:
    wire.ack(wire.batch(wire.entry(1, fields={"name": "First"})))
    changed = wire.entry(1, fields={"name": "Changed"})

    ack = wire.ack(wire.batch(changed, wire.entry(2)))

    assert [(r.status, r.code) for r in ack.results] == [
        ("rejected", "op_id_reused"),
        ("rejected", "tx_rejected"),
    ]
    assert record(engine, "c1") == {
        "name": "First",
        "phone": None,
        "email": None,
        "address": None,
        "notes": None,
    }


def test_a_transaction_split_across_batches_stays_all_or_nothing(wire: Wire) -> None:
    bad = wire.entry(1, fields={"name": 5})
    wire.ack(wire.batch(bad))

    ack = wire.ack(wire.batch(bad, wire.entry(2)))

    assert ack.results[0].status == "duplicate"
    assert ack.results[0].outcome.code == "wrong_type"
    assert (ack.results[1].status, ack.results[1].code) == ("rejected", "tx_rejected")


def test_new_entries_next_to_replayed_ones_are_applied(wire: Wire, engine: sa.Engine) -> None:
    first = wire.entry(1)
    wire.ack(wire.batch(first))

    ack = wire.ack(wire.batch(first, wire.entry(2, tx="t2", record_id="c2")))

    assert ack.results[0] == Result("op-1", "duplicate", original=Result("op-1", "applied"))
    assert ack.results[1] == Result("op-2", "applied")
    assert record(engine, "c2") is not None


def test_delete_leaves_a_tombstone_that_older_writes_do_not_lift(
    wire: Wire, engine: sa.Engine
) -> None:
    wire.ack(wire.batch(wire.entry(1, hlc=stamp(1))))
    wire.ack(wire.batch(wire.entry(2, kind="delete", fields={}, hlc=stamp(5))))
    assert record(engine, "c1") is None

    wire.ack(wire.batch(wire.entry(3, kind="patch", fields={"notes": "late"}, hlc=stamp(3))))
    assert record(engine, "c1") is None

    wire.ack(wire.batch(wire.entry(4, kind="patch", fields={"notes": "back"}, hlc=stamp(9))))
    assert record(engine, "c1") == {
        "name": "Zhang Wei",
        "phone": "13800138000",
        "email": None,
        "address": None,
        "notes": "back",
    }


def test_patch_changes_only_its_fields_and_older_values_lose(wire: Wire, engine: sa.Engine) -> None:
    wire.ack(wire.batch(wire.entry(1, hlc=stamp(10))))
    wire.ack(
        wire.batch(
            wire.entry(2, kind="patch", fields={"notes": "new"}, hlc=stamp(11)),
            wire.entry(3, tx="t2", kind="patch", fields={"name": "Old"}, hlc=stamp(4)),
        )
    )
    current = record(engine, "c1")
    assert isinstance(current, dict)
    assert (current["name"], current["notes"]) == ("Zhang Wei", "new")


def test_concurrent_identical_posts_on_sqlite_apply_once(
    wire: Wire, app: Flask, engine: sa.Engine
) -> None:
    batch = wire.batch(*(wire.entry(i, tx=f"t{i}", record_id=f"c{i}") for i in range(1, 9)))
    barrier = threading.Barrier(4)
    acks: list[Ack] = []

    def post() -> None:
        client = Wire(app.test_client(), wire.device_id, wire.token)
        barrier.wait(timeout=10)
        acks.append(client.ack(batch))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(acks) == 4
    for i in range(8):
        statuses = sorted(ack.results[i].status for ack in acks)
        assert statuses == ["applied", "duplicate", "duplicate", "duplicate"]
    assert len(rows(engine)["ops"]) == 8
