"""Write tests/protocol/corpus/decode.json: hand-made and generated inputs for the decoder.

Run ``python tests/protocol/make_decode_corpus.py`` to regenerate it (seeded: the same
file every time). Each case is a message kind ("batch" or "ack") and a parsed-JSON
input; tests/protocol/test_one_decoder.py checks the decoder and the marshmallow
schemas accept and refuse each one alike.
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
    return cases


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
        base = ack(rng.randint(0, 3))
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
