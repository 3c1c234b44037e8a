"""``fieldsync outbox``: the data box from the command line, in a real child process.

The key is a passphrase in $FIELDSYNC_OUTBOX_PASSPHRASE (never argv); the outbox was
filled by a real SyncClient against the real server, so the parked verdicts are the
server's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from client_sync import OutboxFile, SyncClient
from client_sync._messages import message
from client_sync.cli import PASSPHRASE_ENV, main
from protocol.reasons import Reason
from tests._doubles import BAD, BAD_VERDICT, Enrolled, lenient_registry
from tests.client_sync.conftest import Link

PASSPHRASE = "correct horse battery staple 马"


@pytest.fixture
def outbox(tmp_path: Path, link: Link, device: Enrolled) -> tuple[Path, dict[str, str]]:
    """An outbox (passphrase-keyed) with one acked, two parked and one pending entry."""
    path = tmp_path / "outbox.db"
    with SyncClient(
        path,
        PASSPHRASE,
        device_id=device.device_id,
        channels=[link("wifi")],
        registry=lenient_registry(),
    ) as client:
        ok = client.record("customers", "ok", {"name": "Fine"})
        with client.transaction():
            bad = client.record("customers", "bad", BAD)
            sibling = client.record("customers", "sib", {"name": "Sibling"})
        client.sync_now()
        pending = client.record("customers", "later", {"name": "Later"})
    return path, {"ok": ok, "bad": bad, "sibling": sibling, "pending": pending}


def fieldsync(
    *args: str | bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m client_sync.cli ARGS`` with the passphrase in the environment."""
    environ = {**os.environ, PASSPHRASE_ENV: PASSPHRASE, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "client_sync.cli", *args],
        capture_output=True,
        env=environ,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def ok(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode()


def refused(done: subprocess.CompletedProcess[bytes]) -> str:
    """A refusal: non-zero exit, a short message on stderr, no traceback."""
    err = done.stderr.decode(errors="replace")
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 4, err
    return err


def state_of(path: Path) -> tuple[object, ...]:
    with OutboxFile(path, PASSPHRASE) as box:
        return (
            [(e.op_id, e.state, e.fields) for e in box.databox()],
            box.stats(),
            box.audit_log(),
        )


def test_the_table_in_english_and_chinese(outbox: tuple[Path, dict[str, str]]) -> None:
    path, ids = outbox
    en = ok(fieldsync("outbox", "--db", str(path), "--passphrase"))
    assert ids["bad"] in en and ids["pending"] in en and ids["ok"] not in en
    assert message(Reason.FIELD_TOO_LONG, "en", field=BAD_VERDICT[1]) in en
    assert "pending 1" in en and "parked 2" in en
    zh = ok(fieldsync("outbox", "--db", str(path), "--passphrase", "--lang", "zh_Hans"))
    assert message(Reason.FIELD_TOO_LONG, "zh_Hans", field=BAD_VERDICT[1]) in zh
    assert message(Reason.INVALID_VALUE, "zh_Hans", server_code="tx_rejected") in zh


def test_json_for_tools(outbox: tuple[Path, dict[str, str]]) -> None:
    path, ids = outbox
    out = json.loads(
        ok(fieldsync("outbox", "--db", str(path), "--passphrase", "--json", "--lang", "zh_Hans"))
    )
    assert out["counts"] == {"pending": 1, "in_flight": 0, "parked": 2}
    assert out["reasons"] == {"field_too_long": 1, "invalid_value": 1}
    by_id = {e["op_id"]: e for e in out["entries"]}
    assert set(by_id) == {ids["bad"], ids["sibling"], ids["pending"]}
    bad = by_id[ids["bad"]]
    assert (bad["state"], bad["code"], bad["server_code"], bad["field"]) == (
        "parked",
        "field_too_long",
        *BAD_VERDICT,
    )
    assert bad["message"] == message(Reason.FIELD_TOO_LONG, "zh_Hans", field="notes")
    assert bad["channel"] == "wifi" and bad["attempts"] == 1


def test_resubmit_with_a_corrected_field(outbox: tuple[Path, dict[str, str]]) -> None:
    path, ids = outbox
    out = json.loads(
        ok(
            fieldsync(
                "outbox",
                "--db",
                str(path),
                "--passphrase",
                "--json",
                "resubmit",
                ids["bad"],
                "--field",
                "notes=cut to fit",
                "--reason",
                "notes too long",
            )
        )
    )
    assert out["action"] == "resubmit" and out["op_id"] == ids["bad"]
    with OutboxFile(path, PASSPHRASE) as box:
        new = box.entry(out["new_op_id"])
        waiting = {e.op_id: e for e in box.databox()}
        audit = box.audit_log()
    assert (new.fields["name"], new.fields["notes"]) == (BAD["name"], "cut to fit")
    assert waiting[out["new_op_id"]].resubmit_of == ids["bad"]
    assert ids["bad"] not in waiting and ids["sibling"] not in waiting  # went with it
    assert (audit[0]["action"], audit[0]["reason"]) == ("resubmit", "notes too long")


def test_discard_with_a_reason(outbox: tuple[Path, dict[str, str]]) -> None:
    path, ids = outbox
    line = ok(
        fieldsync(
            "outbox",
            "--db",
            str(path),
            "--passphrase",
            "discard",
            ids["sibling"],
            "--reason",
            "duplicate of c-7",
        )
    )
    assert ids["sibling"] in line
    with OutboxFile(path, PASSPHRASE) as box:
        assert ids["sibling"] not in {e.op_id for e in box.databox()}
        assert [(a["action"], a["op_id"], a["reason"]) for a in box.audit_log()] == [
            ("discard", ids["sibling"], "duplicate of c-7")
        ]


#: Hostile arguments; each is refused with a short message and changes nothing.
HOSTILE: list[list[str]] = [
    ["resubmit", "{bad}", "--field", "notes=a\x01b" + "x" * 3000, "--reason", "r"],
    ["resubmit", "{bad}", "--field", "notes=a\x00b", "--reason", "r"],
    ["resubmit", "{bad}", "--field", "notes", "--reason", "r"],  # no "="
    ["resubmit", "{bad}", "--field", "=x", "--reason", "r"],
    ["resubmit", "{bad}", "--field", "nötes=x", "--reason", "r"],
    ["resubmit", "{bad}", "--field", "notes=a", "--field", "notes=b", "--reason", "r"],
    ["resubmit", "{bad}", "--field", "notes=" + "x" * 100_001, "--reason", "r"],
    ["resubmit", "{bad}", "--json-field", "notes=NaN", "--reason", "r"],
    ["resubmit", "{bad}", "--json-field", 'notes={"a":1,"a":2}', "--reason", "r"],
    ["resubmit", "{bad}", "--json-field", "notes=" + "[" * 5000, "--reason", "r"],
    ["resubmit", "{bad}", "--json-field", "name=1e999999", "--reason", "r"],
    ["resubmit", "{bad}", "--json-field", "name=١٢٣", "--reason", "r"],
    ["resubmit", "{bad}", "--json-field", "name=" + "9" * 5000, "--reason", "r"],
    ["resubmit", "{bad}", "--field", "notes=ok"],  # no reason
    ["resubmit", "{bad}", "--field", "notes=ok", "--reason", "   "],
    ["resubmit", "{bad}", "--field", "notes=ok", "--reason", "why\udcff"],
    ["resubmit", "{bad}", "--field", "notes=\ud800", "--reason", "r"],
    ["resubmit", "{pending}", "--field", "notes=ok", "--reason", "not parked"],
    ["resubmit", "no-such-op", "--reason", "r"],
    ["resubmit", "\udcff\x00", "--reason", "r"],
    ["discard", "{bad}", "--reason", ""],
    ["discard", "{bad}", "--reason", "x" * 501],
    ["discard", "{bad}", "--reason", "a\x00b"],
    ["discard", "{pending}", "--reason", "not parked"],
    ["discard", "{ok}", "--reason", "already on the server"],
]


def _fill(args: list[str], ids: dict[str, str]) -> list[str]:
    out = []
    for arg in args:
        filled = arg
        for name, op_id in ids.items():
            filled = filled.replace("{" + name + "}", op_id)
        out.append(filled)
    return out


@pytest.mark.parametrize("args", HOSTILE)
def test_hostile_arguments_are_refused_and_change_nothing(
    outbox: tuple[Path, dict[str, str]], args: list[str]
) -> None:
    """In process (CliRunner) for speed; the child-process form is the next test."""
    path, ids = outbox
    before = state_of(path)
    result = CliRunner().invoke(
        main,
        ["outbox", "--db", str(path), "--passphrase", *_fill(args, ids)],
        env={PASSPHRASE_ENV: PASSPHRASE},
    )
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert len(result.output.strip().splitlines()) <= 4, result.output
    assert state_of(path) == before


def test_undecodable_argv_bytes_are_refused_in_a_real_process(
    outbox: tuple[Path, dict[str, str]],
) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates: refused, nothing changed."""
    path, ids = outbox
    before = state_of(path)
    for args in (
        ["resubmit", ids["bad"], "--field", b"notes=\xff\xfe", "--reason", "r"],
        ["resubmit", ids["bad"], "--field", "notes=ok", "--reason", b"why\xff"],
        ["discard", b"\xff\xfe", "--reason", "r"],
    ):
        refused(fieldsync("outbox", "--db", str(path), "--passphrase", *args))
    assert state_of(path) == before


def test_the_wrong_passphrase_and_a_missing_key_are_one_line_refusals(
    outbox: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, _ = outbox
    err = refused(
        fieldsync("outbox", "--db", str(path), "--passphrase", env={PASSPHRASE_ENV: "wrong"})
    )
    assert "does not open" in err
    err = refused(fieldsync("outbox", "--db", str(path)))
    assert "--key-file" in err
    err = refused(fieldsync("outbox", "--db", str(tmp_path / "none.db"), "--passphrase"))
    assert "no outbox" in err
