"""Write tests/protocol/corpus/decode.json: hand-made and generated inputs for the decoder.

Run ``python tests/protocol/make_decode_corpus.py`` to regenerate it (seeded: the same
file every time). Each case is a message kind ("batch" or "ack") and a parsed-JSON
input (2.1 batches with a report and acks with commands among them);
tests/protocol/test_one_decoder.py checks the decoder and the marshmallow schemas
accept and refuse each one alike.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "corpus" / "decode.json"

#: Values hostile input is made of: wrong types, edges of every range, bad text.
ODD: list[Any] = [
    None, True, False, 0, -1, 1, 2, 2**70, 1.0, "", "x", "x" * 64, "x" * 65, "x" * 128,
    "x" * 129, [], {}, {"": 1}, 2**63 - 1, 2**63, 2**31 - 1, 2**31, 500, 501, "c\x00",
    "c\n", "c\x7f", "c\x85", "c\ud800", {"c\x00": 1}, "upsert", "delete", "applied",
    "nope", "d1", "op-0", "tx-0", "2.0", "x" * 16, "x" * 17, 253_402_300_799_999,
    253_402_300_800_000, ["x"], [None], [{}],
    # the report's words and hostile numbers: non-ASCII digits, a huge count, kinds
    "١٢٣", "１２", "²", 2**63 - 1, 9 * 10**30, -(2**63), "link", "attempt", "status",
    "refused", "databox", "storage_low", "ok", "os", "sync", "done", "failed", "discard",
    "resubmit", "2.1", "x" * 1000, "x" * 1001, "m\udfff",
]  # fmt: skip


def entry(i: int, tx: int, tx_count: int) -> dict[str, Any]:
    """A valid wire entry of device d1."""
    return {
        "op_id": f"op-{i}",
        "device_id": "d1",
        "seq": i + 1,
        "tx_id": f"tx-{tx}",
        "tx_count": tx_count,
        "hlc": f"1700000000000-{i:05d}-d1",
        "collection": "customers",
        "record_id": f"c{i}",
        "kind": "upsert",
        "fields": {"name": f"C {i}", "phone": None},
        "schema_version": 1,
    }


def batch(n: int) -> dict[str, Any]:
    """A valid batch of ``n`` entries in transactions of two."""
    entries = [entry(i, i // 2, min(2, n - i // 2 * 2)) for i in range(n)]
    return {"protocol_version": "2.0", "batch_id": "b1", "device_id": "d1", "entries": entries}


def events() -> list[dict[str, Any]]:
    """One journal event of every kind, optional members present and absent."""
    return [
        {"id": "e1", "at_ms": 1, "kind": "link", "channel": "wifi", "up": False, "source": "os"},
        {"id": "e2", "at_ms": 2, "kind": "attempt", "channel": "wifi", "started_ms": 1,
         "ended_ms": 2, "entries": 3, "bytes_sent": 100, "bytes_received": 50,
         "outcome": "timeout"},
        {"id": "e3", "at_ms": 3, "kind": "attempt", "channel": "cellular", "started_ms": 2,
         "ended_ms": 3, "entries": 0, "bytes_sent": 1, "bytes_received": 2, "outcome": "ok",
         "server_time_ms": 4},
        {"id": "e4", "at_ms": 4, "kind": "status", "queue_depth": 7, "free_bytes": 10**9,
         "app_version": "3.1.0", "protocol_version": "2.1"},
        {"id": "e5", "at_ms": 5, "kind": "refused", "code": "storage_low", "free_bytes": 10},
        {"id": "e6", "at_ms": 6, "kind": "databox", "action": "discard", "op_id": "op-9",
         "reason": "duplicate"},
        {"id": "e7", "at_ms": 7, "kind": "databox", "action": "resubmit", "op_id": "op-8",
         "reason": "fixed", "new_op_id": "op-10", "command_id": "cmd-1"},
    ]  # fmt: skip


def report() -> dict[str, Any]:
    """A valid report with every part filled."""
    return {
        "sent_ms": 1_700_000_000_000,
        "journal": events(),
        "databox": {
            "counts": {"pending": 2, "in_flight": 0, "parked": 1},
            "reasons": {"field_too_long": 1},
            "parked": [
                {"op_id": "op-9", "collection": "customers", "record_id": "c9",
                 "code": "too_long", "message": "notes is too long", "age_s": 60}
            ],
        },
        "outcomes": [
            {"command_id": "cmd-1", "status": "done", "new_op_id": "op-10"},
            {"command_id": "cmd-2", "status": "failed", "code": "not_parked",
             "message": "op-3 is not parked"},
        ],
    }  # fmt: skip


def report_batch(n: int) -> dict[str, Any]:
    """A valid 2.1 batch of ``n`` entries (maybe none) with a report."""
    raw = {**batch(max(n, 1)), "protocol_version": "2.1", "report": report()}
    if n == 0:
        raw["entries"] = []
    return raw


def command(i: int) -> dict[str, Any]:
    """A valid command."""
    return {"command_id": f"cmd-{i}", "kind": "resubmit", "op_id": f"op-{i}", "reason": "fixed"}


def ack(n: int) -> dict[str, Any]:
    """A valid ack with ``n`` results, a duplicate among them."""
    results: list[dict[str, Any]] = [{"op_id": f"op-{i}", "status": "applied"} for i in range(n)]
    if n:
        results[-1] = {
            "op_id": f"op-{n - 1}",
            "status": "duplicate",
            "original": {"op_id": f"op-{n - 1}", "status": "rejected", "code": "too_long"},
        }
    return {"batch_id": "b1", "results": results, "server_time_ms": 1_700_000_000_000}


def slots(raw: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a value tree, so a mutation can reach any depth."""
    found: list[tuple[Any, Any]] = []
    stack = [raw]
    while stack:
        item = stack.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, value in list(pairs):
            found.append((item, key))
            if isinstance(value, dict | list):
                stack.append(value)
    return found


def mutate(raw: Any, rng: random.Random, times: int) -> Any:
    """``raw`` with ``times`` random sets, deletions and additions anywhere in it."""
    raw = copy.deepcopy(raw)
    for _ in range(times):
        places = slots(raw)
        if not places:
            break
        target, key = rng.choice(places)
        action = rng.choice(["set", "set", "delete", "add"])
        if action == "set":
            target[key] = copy.deepcopy(rng.choice(ODD))
        elif action == "delete" and isinstance(target, dict):
            del target[key]
        elif isinstance(target, dict):
            target[rng.choice(["extra", "x" * 129, "", "original"])] = copy.deepcopy(
                rng.choice(ODD)
            )
        else:
            target.append(copy.deepcopy(rng.choice(ODD)))
    return raw


def hand_made() -> list[dict[str, Any]]:
    """Cases chosen one by one: each edge of each rule."""
    cases: list[dict[str, Any]] = []

    def add(name: str, kind: str, value: Any) -> None:
        cases.append({"name": name, "message": kind, "input": value})

    add("batch of one", "batch", batch(1))
    add("no entries", "batch", {**batch(1), "entries": []})
    add("not an object", "batch", ["x"])
    add("entries not a list", "batch", {**batch(1), "entries": {"0": entry(0, 0, 1)}})
    add("null entry", "batch", {**batch(1), "entries": [None]})
    add("string entry", "batch", {**batch(1), "entries": ["x"]})
    add("unknown batch member", "batch", {**batch(1), "journal": []})
    add("missing everything", "batch", {})
    add("foreign device", "batch", {**batch(2), "device_id": "d2"})
    big = batch(1)
    big["entries"][0]["fields"] = {f"f{i}": i for i in range(201)}
    add("201 fields", "batch", big)
    big = copy.deepcopy(big)
    big["entries"][0]["fields"]["bad\x00"] = 1
    add("201 fields and a bad key", "batch", big)
    dup = batch(2)
    dup["entries"][1]["op_id"] = "op-0"
    add("repeated op_id", "batch", dup)
    order = batch(2)
    order["entries"][1]["seq"] = 1
    add("seq not increasing", "batch", order)
    split = batch(3)
    for e, tx in zip(split["entries"], ("a", "b", "a"), strict=True):
        e["tx_id"], e["tx_count"] = tx, 1
    add("transaction not contiguous", "batch", split)
    half = batch(1)
    half["entries"][0]["tx_count"] = 2
    add("transaction not whole", "batch", half)
    for kind in ("upsert", "patch", "delete", "Upsert", "upsert "):
        one = batch(1)
        one["entries"][0]["kind"] = kind
        add(f"kind {kind!r}", "batch", one)
    add_report_cases(add)
    add("ack", "ack", ack(3))
    add("empty ack", "ack", ack(0))
    add("ack without time", "ack", {"batch_id": "b1", "results": []})
    add("ack time null", "ack", {"batch_id": "b1", "results": [], "server_time_ms": None})
    add("ack time negative", "ack", {"batch_id": "b1", "results": [], "server_time_ms": -1})
    deep: dict[str, Any] = {"op_id": "o", "status": "applied"}
    for _ in range(6):
        deep = {"op_id": "o", "status": "duplicate", "original": deep}
    add("deep duplicate", "ack", {"batch_id": "b1", "results": [deep]})
    add("original not an object", "ack", {"batch_id": "b1", "results": [{**deep, "original": 3}]})
    add("null result", "ack", {"batch_id": "b1", "results": [None]})
    add("results not a list", "ack", {"batch_id": "b1", "results": "x"})
    add("ack with commands", "ack", {**ack(1), "commands": [command(1), command(2)]})
    add("ack with no commands", "ack", {**ack(1), "commands": []})
    add("ack commands null", "ack", {**ack(1), "commands": None})
    add("ack commands not a list", "ack", {**ack(1), "commands": {"0": command(0)}})
    add("ack with 100 commands", "ack", {**ack(0), "commands": [command(i) for i in range(100)]})
    add("ack with 101 commands", "ack", {**ack(0), "commands": [command(i) for i in range(101)]})
    add("command of unknown kind", "ack", {**ack(0), "commands": [{**command(0), "kind": "wipe"}]})
    add(
        "command missing op_id",
        "ack",
        {**ack(0), "commands": [{"command_id": "c", "kind": "discard", "reason": "r"}]},
    )
    return cases


def add_report_cases(add: Any) -> None:
    """Hand-made protocol 2.1 batches: valid reports and each way one can be wrong."""
    add("batch with a report", "batch", report_batch(2))
    add("report-only batch", "batch", report_batch(0))
    add("report null", "batch", {**batch(1), "report": None})
    add("report null and no entries", "batch", {**batch(1), "entries": [], "report": None})
    add("report under 2.0", "batch", {**report_batch(1), "protocol_version": "2.0"})
    add("report under 2.9", "batch", {**report_batch(1), "protocol_version": "2.9"})
    add("report not an object", "batch", {**report_batch(1), "report": ["x"]})
    add("report empty", "batch", {**report_batch(1), "report": {}})
    add("report unknown member", "batch", {**report_batch(1), "report": {**report(), "x": 1}})
    for name, value in (
        ("non-ASCII digits", "١٢٣"), ("a huge number", 9 * 10**30), ("a float", 1.0),
        ("a bool", True), ("negative", -1), ("past year 9999", 253_402_300_800_000),
    ):  # fmt: skip
        add(
            f"sent_ms {name}",
            "batch",
            {**report_batch(1), "report": {**report(), "sent_ms": value}},
        )
    for i, event in enumerate(events()):
        for key in [k for k in event if k not in ("kind",)]:
            bad = copy.deepcopy(report_batch(0))
            del bad["report"]["journal"][i][key]
            add(f"event {i} without {key}", "batch", bad)
    for label, change in (
        ("kind unknown", {"kind": "wipe"}), ("kind null", {"kind": None}), ("kind 3", {"kind": 3}),
        ("id too long", {"id": "x" * 65}), ("id with NUL", {"id": "e\x00"}),
        ("id surrogate", {"id": "e\ud800"}), ("up as 1", {"up": 1}), ("up null", {"up": None}),
        ("source odd", {"source": "radio"}), ("attempt member on a link", {"outcome": "ok"}),
        ("channel empty", {"channel": ""}), ("at_ms digits", {"at_ms": "١"}),
    ):  # fmt: skip
        bad = copy.deepcopy(report_batch(0))
        bad["report"]["journal"][0].update(change)
        add(f"link event {label}", "batch", bad)
    no_kind = copy.deepcopy(report_batch(0))
    del no_kind["report"]["journal"][0]["kind"]
    add("event without kind", "batch", no_kind)
    for label, change in (
        ("server_time_ms null", {"server_time_ms": None}),
        ("server_time_ms huge", {"server_time_ms": 2**63}),
        ("outcome too long", {"outcome": "x" * 65}),
        ("entries negative", {"entries": -1}),
        ("bytes_sent 2^63", {"bytes_sent": 2**63}),
    ):
        bad = copy.deepcopy(report_batch(0))
        bad["report"]["journal"][2].update(change)
        add(f"attempt event {label}", "batch", bad)
    for label, change in (
        ("code other", {"code": "disk_full"}), ("free_bytes string", {"free_bytes": "10"}),
    ):  # fmt: skip
        bad = copy.deepcopy(report_batch(0))
        bad["report"]["journal"][4].update(change)
        add(f"refused event {label}", "batch", bad)
    for label, change in (
        ("protocol_version long", {"protocol_version": "x" * 17}),
        ("app_version control", {"app_version": "3\n1"}),
    ):
        bad = copy.deepcopy(report_batch(0))
        bad["report"]["journal"][3].update(change)
        add(f"status event {label}", "batch", bad)
    repeated = copy.deepcopy(report_batch(0))
    repeated["report"]["journal"][1]["id"] = "e1"
    add("event id repeated", "batch", repeated)
    event = events()[0]
    many = copy.deepcopy(report_batch(0))
    many["report"]["journal"] = [{**event, "id": f"e{i}"} for i in range(500)]
    add("500 events", "batch", many)
    many = copy.deepcopy(many)
    many["report"]["journal"].append({**event, "id": "e500"})
    add("501 events", "batch", many)
    many = copy.deepcopy(many)
    many["report"]["journal"].append(None)
    add("501 events and a null", "batch", many)
    for label, databox in (
        ("databox null", None), ("databox list", []), ("databox empty", {}),
        ("counts missing", {"reasons": {}, "parked": []}),
        ("counts negative", {"counts": {"pending": -1, "in_flight": 0, "parked": 0}, "reasons": {}, "parked": []}),  # noqa: E501
        ("counts extra", {"counts": {"pending": 0, "in_flight": 0, "parked": 0, "lost": 0}, "reasons": {}, "parked": []}),  # noqa: E501
        ("reasons list", {"counts": report()["databox"]["counts"], "reasons": [], "parked": []}),
        ("reasons bad key and value", {"counts": report()["databox"]["counts"], "reasons": {"x" * 65: "1", "ok": 2**63, "": None}, "parked": []}),  # noqa: E501
        ("65 reasons", {"counts": report()["databox"]["counts"], "reasons": {f"r{i}": i for i in range(65)}, "parked": []}),  # noqa: E501
        ("parked null", {**report()["databox"], "parked": None}),
        ("parked item string", {**report()["databox"], "parked": ["x"]}),
        ("101 parked", {**report()["databox"], "parked": report()["databox"]["parked"] * 101}),
        ("parked message too long", {**report()["databox"], "parked": [{**report()["databox"]["parked"][0], "message": "x" * 1001}]}),  # noqa: E501
        ("parked message surrogate", {**report()["databox"], "parked": [{**report()["databox"]["parked"][0], "message": "m\udfff"}]}),  # noqa: E501
        ("parked age huge", {**report()["databox"], "parked": [{**report()["databox"]["parked"][0], "age_s": 2**64}]}),  # noqa: E501
    ):  # fmt: skip
        add(
            f"report {label}",
            "batch",
            {**report_batch(0), "report": {**report(), "databox": databox}},
        )
    for label, outcomes in (
        ("outcomes null", None), ("outcomes object", {}),
        ("outcome status odd", [{"command_id": "c", "status": "maybe"}]),
        ("outcome code null", [{"command_id": "c", "status": "done", "code": None}]),
        ("outcome message 1001", [{"command_id": "c", "status": "failed", "message": "x" * 1001}]),
        ("outcome without id", [{"status": "done"}]),
        ("101 outcomes", [{"command_id": f"c{i}", "status": "done"} for i in range(101)]),
    ):  # fmt: skip
        add(
            f"report {label}",
            "batch",
            {**report_batch(0), "report": {**report(), "outcomes": outcomes}},
        )


def generated(seed: int = 20261122, per_kind: int = 200) -> list[dict[str, Any]]:
    """Seeded mutations of valid batches and acks, one to four changes each."""
    rng = random.Random(seed)
    cases = []
    for i in range(per_kind):
        base = batch(rng.randint(1, 3))
        cases.append(
            {
                "name": f"batch mutation {i}",
                "message": "batch",
                "input": mutate(base, rng, rng.randint(1, 4)),
            }
        )
        base = report_batch(rng.randint(0, 2))
        cases.append(
            {
                "name": f"report batch mutation {i}",
                "message": "batch",
                "input": mutate(base, rng, rng.randint(1, 4)),
            }
        )
        base = {
            **ack(rng.randint(0, 3)),
            "commands": [command(j) for j in range(rng.randint(0, 2))],
        }
        cases.append(
            {
                "name": f"ack mutation {i}",
                "message": "ack",
                "input": mutate(base, rng, rng.randint(1, 4)),
            }
        )
    return cases


def main() -> None:
    """Write the corpus file."""
    OUT.parent.mkdir(exist_ok=True)
    lines = [json.dumps(case, sort_keys=True) for case in hand_made() + generated()]
    OUT.write_text("[\n" + ",\n".join(lines) + "\n]\n")


if __name__ == "__main__":
    main()
