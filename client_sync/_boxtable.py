"""``fieldsync outbox``'s output and argument parsing (kept out of cli.py to keep it short)."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click

from ._boxview import DataBoxCounts, DataBoxEntry

#: A field name on the command line: what the registry accepts as a field name.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}", re.ASCII)
#: Longest --field/--json-field argument read (a value is bounded before it is parsed).
MAX_ARGUMENT = 100_000


@dataclass(frozen=True, slots=True)
class _BoxArgs:
    """The ``outbox`` group's options, handed to its subcommands."""

    db: str
    key_file: str | None
    passphrase: bool
    as_json: bool
    lang: str


def corrections(texts: tuple[str, ...], jsons: tuple[str, ...]) -> dict[str, Any]:
    """The fields set by ``--field NAME=TEXT`` and ``--json-field NAME=JSON`` (UsageError)."""
    found: dict[str, Any] = {}
    for raw, parse in [(t, False) for t in texts] + [(j, True) for j in jsons]:
        if len(raw) > MAX_ARGUMENT:
            raise click.UsageError(f"a field argument is at most {MAX_ARGUMENT} characters")
        name, eq, value = raw.partition("=")
        if not eq or not _NAME.fullmatch(name):
            raise click.UsageError(
                f"expected NAME=VALUE with NAME of [A-Za-z0-9_] (1-64): {raw[:80]!r}"
            )
        if name in found:
            raise click.UsageError(f"field {name} given twice")
        found[name] = _json(name, value) if parse else value
    return found


def _json(name: str, text: str) -> Any:
    """One JSON value, strictly: no NaN/Infinity, no duplicate keys."""

    def no_constant(word: str) -> Any:
        raise ValueError(f"{word} is not JSON")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key")
        return dict(pairs)

    try:
        value = json.loads(text, parse_constant=no_constant, object_pairs_hook=unique)
    except (ValueError, RecursionError) as exc:
        raise click.UsageError(f"--json-field {name}: not a JSON value ({exc})") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise click.UsageError(f"--json-field {name}: not a finite number")
    return value


def box_json(device_id: str, entries: list[DataBoxEntry], counts: DataBoxCounts) -> dict[str, Any]:
    """The data box as one JSON object (``--json``)."""
    return {
        "device_id": device_id,
        "counts": counts.states,
        "reasons": counts.reasons,
        "failing": counts.failing,
        "entries": [
            {
                "op_id": e.op_id,
                "seq": e.seq,
                "state": e.state.value,
                "collection": e.collection,
                "record_id": e.record_id,
                "kind": e.kind,
                "attempts": e.attempts,
                "code": e.code,
                "server_code": e.server_code,
                "field": e.field,
                "message": e.message,
                "detail": e.detail,
                "channel": e.channel,
                "sent_at": e.sent_at,
                "queued_at": e.queued_at,
                "next_retry_at": e.next_retry_at,
                "resubmit_of": e.resubmit_of,
            }
            for e in entries
        ],
    }


def box_table(
    db: str, device_id: str, entries: list[DataBoxEntry], counts: DataBoxCounts
) -> Iterator[str]:
    """The data box as lines of a table: one row per entry, its message under it."""
    states = "  ".join(f"{k} {v}" for k, v in counts.states.items())
    yield f"outbox {db} (device {device_id}): {states}"
    if counts.reasons:
        yield "parked by reason: " + ", ".join(
            f"{k} {v}" for k, v in sorted(counts.reasons.items())
        )
    if not entries:
        yield "nothing waiting: every entry is on the server"
        return
    yield f"{'STATE':<10} {'OP_ID':<36} {'RECORD':<30} {'TRIES':>5} {'REASON':<26} CHANNEL  SENT"
    for e in entries:
        record = _clip(f"{e.collection}/{e.record_id}", 30)
        sent = _when(e.sent_at)
        yield (
            f"{e.state.value:<10} {e.op_id:<36} {record:<30} {e.attempts:>5} "
            f"{e.code or '-':<26} {e.channel or '-':<8} {sent}"
        )
        if e.message:
            yield f"    {e.message}"
        if e.detail:
            yield f"    ({_clip(e.detail, 200)})"


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
