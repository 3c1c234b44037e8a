"""The ``fieldsync`` device tools: keygen, status, discard; keys; one-line errors."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from client_sync import SyncClient
from client_sync.cli import PASSPHRASE_ENV, main
from tests._doubles import (
    BAD,
    BAD_VERDICT,
    SIBLING_CODE,
    Enrolled,
    Offline,
    SimulatedCrash,
    lenient_registry,
)
from tests.client_sync.conftest import Link


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "outbox.key"
    assert run("keygen", str(path)).exit_code == 0
    return path


@pytest.fixture
def outbox(tmp_path: Path, key_file: Path, link: Link, device: Enrolled) -> tuple[Path, list[str]]:
    """An outbox with one acked, two parked (one transaction) and one pending entry."""
    path = tmp_path / "outbox.db"
    with SyncClient(
        path,
        key_file.read_bytes(),
        device_id=device.device_id,
        channels=[link("wifi")],
        registry=lenient_registry(),
    ) as client:
        client.record("customers", "ok", {"name": "Fine"})
        with client.transaction():
            bad = client.record("customers", "bad", BAD)
            sibling = client.record("customers", "sib", {"name": "Sibling"})
        client.sync_now()
        pending = client.record("customers", "later", {"name": "Later"})
    return path, [bad, sibling, pending]


def test_keygen_writes_a_private_32_byte_key_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k"
    result = run("keygen", str(path))
    assert result.exit_code == 0, result.output
    assert len(path.read_bytes()) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    again = run("keygen", str(path))
    assert again.exit_code == 1 and "exists" in again.output
    assert path.read_bytes() == first
    other = tmp_path / "k2"
    run("keygen", str(other))
    assert other.read_bytes() != first


def test_status_shows_counts_and_parked_reasons(
    outbox: tuple[Path, list[str]], key_file: Path, device: Enrolled
) -> None:
    path, (bad, sibling, _) = outbox
    result = run("status", "--db", str(path), "--key-file", str(key_file))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"outbox {path} (device {device.device_id})"
    counts = dict(line.split() for line in lines[1:7])
    assert counts == {
        "pending": "1",
        "in_flight": "0",
        "acked": "1",
        "parked": "2",
        "discarded": "0",
        "resubmitted": "0",
    }
    code, field = BAD_VERDICT
    assert any(bad in line and f"{code} [{field}]: " in line for line in lines)
    assert any(sibling in line and SIBLING_CODE in line for line in lines)


def test_status_json(outbox: tuple[Path, list[str]], key_file: Path, device: Enrolled) -> None:
    path, (bad, _, _) = outbox
    result = run("status", "--db", str(path), "--key-file", str(key_file), "--json")
    data = json.loads(result.output)
    assert data["device_id"] == device.device_id and data["counts"]["parked"] == 2
    assert data["parked"][0]["op_id"] == bad and data["parked"][0]["field"] == BAD_VERDICT[1]


def test_status_does_not_recover_in_flight_entries_of_a_running_app(
    tmp_path: Path, key_file: Path, link: Link, device: Enrolled
) -> None:
    path = tmp_path / "outbox.db"
    wifi = link("wifi", script=["crash"])
    client = SyncClient(path, key_file.read_bytes(), device_id=device.device_id, channels=[wifi])
    try:
        client.record("customers", "c1", {"name": "A"})
        with pytest.raises(SimulatedCrash):
            client.sync_now()
        result = run("status", "--db", str(path), "--key-file", str(key_file), "--json")
        assert json.loads(result.output)["counts"]["in_flight"] == 1
        assert client.stats()["in_flight"] == 1
    finally:
        client.close()


def test_discard_from_the_command_line_is_audited(
    outbox: tuple[Path, list[str]], key_file: Path, device: Enrolled
) -> None:
    path, (bad, _, pending) = outbox
    result = run("discard", "--db", str(path), "--key-file", str(key_file), "--reason", "dup", bad)
    assert result.exit_code == 0, result.output
    refused = run(
        "discard", "--db", str(path), "--key-file", str(key_file), "--reason", "x", pending
    )
    assert refused.exit_code == 1
    assert refused.output.strip() == f"Error: entry {pending} cannot go from pending to discarded"
    with SyncClient(
        path,
        key_file.read_bytes(),
        device_id=device.device_id,
        channels=[Offline()],
    ) as client:
        assert client.entry(bad).state == "discarded"
        assert client.audit_log()[0]["reason"] == "dup"
        # Journaled too, so the next report tells the server: nothing goes unseen.
        box = [e for e in client.journal_events() if e["kind"] == "databox"]
        assert [(e["action"], e["op_id"], e["reason"]) for e in box] == [("discard", bad, "dup")]


@pytest.mark.parametrize(
    "problem", ["wrong key", "no outbox", "short key file", "missing key file"]
)
def test_errors_are_one_line_without_a_traceback(
    outbox: tuple[Path, list[str]], tmp_path: Path, key_file: Path, problem: str
) -> None:
    path, _ = outbox
    other_key = tmp_path / "other.key"
    run("keygen", str(other_key))
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    db, key, expected = {
        "wrong key": (path, other_key, f"this key does not open {path}"),
        "no outbox": (tmp_path / "nope.db", key_file, "no outbox at"),
        "short key file": (path, short, "holds 3 bytes"),
        "missing key file": (path, tmp_path / "missing.key", "cannot read key file"),
    }[problem]
    before = path.read_bytes()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "client_sync.cli",
            "status",
            "--db",
            str(db),
            "--key-file",
            str(key),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and expected in done.stderr
    assert "Traceback" not in done.stderr
    assert path.read_bytes() == before
    assert not (tmp_path / "nope.db").exists()


def test_a_hex_key_file_works_too(
    outbox: tuple[Path, list[str]], key_file: Path, tmp_path: Path
) -> None:
    path, _ = outbox
    hex_file = tmp_path / "key.hex"
    hex_file.write_text(key_file.read_bytes().hex() + "\n")
    assert run("status", "--db", str(path), "--key-file", str(hex_file)).exit_code == 0


# -- passphrase outboxes: from the environment or a hidden prompt, never from argv --------

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def passphrase_outbox(tmp_path: Path) -> Path:
    """An outbox keyed with a passphrase, holding one pending entry."""
    path = tmp_path / "pass.db"
    wifi = Offline()
    with SyncClient(path, PASSPHRASE, device_id="dev-9", channels=[wifi]) as client:
        client.record("customers", "c1", {"name": "Pass"})
    return path


def status_in_a_process(
    path: Path, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client_sync.cli", "status", "--db", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


def test_a_passphrase_from_the_environment_opens_the_outbox(passphrase_outbox: Path) -> None:
    done = status_in_a_process(
        passphrase_outbox, {PASSPHRASE_ENV: PASSPHRASE}, "--passphrase", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["pending"] == 1
    assert done.stderr == ""


def test_a_wrong_passphrase_from_the_environment_is_one_clear_line(
    passphrase_outbox: Path,
) -> None:
    before = passphrase_outbox.read_bytes()
    done = status_in_a_process(passphrase_outbox, {PASSPHRASE_ENV: "nope"}, "--passphrase")
    assert done.returncode == 1
    assert done.stderr == f"Error: this key does not open {passphrase_outbox}: " + (
        "no page of it decrypts with this key\n"
    )
    assert passphrase_outbox.read_bytes() == before


def test_without_the_environment_the_passphrase_is_asked_for_hidden(
    passphrase_outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    result = CliRunner().invoke(
        main,
        ["status", "--db", str(passphrase_outbox), "--passphrase", "--json"],
        input=PASSPHRASE + "\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["device_id"] == "dev-9"  # the prompt is not on stdout
    assert "Outbox passphrase:" in result.stderr
    assert PASSPHRASE not in result.output  # hidden: not echoed


def test_discard_takes_a_passphrase_too(passphrase_outbox: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["discard", "--db", str(passphrase_outbox), "--passphrase", "--reason", "x", "no-such"],
        env={PASSPHRASE_ENV: PASSPHRASE},
    )
    assert result.exit_code == 1
    assert "no entry no-such in the outbox" in result.output  # it opened, then refused


@pytest.mark.parametrize("args", [[], ["--key-file", "k", "--passphrase"]], ids=["none", "both"])
def test_exactly_one_key_source(passphrase_outbox: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["status", "--db", str(passphrase_outbox), *args])
    assert result.exit_code == 2
    assert "give either --key-file FILE or --passphrase" in result.output


def test_no_option_takes_a_key_or_passphrase_on_the_command_line() -> None:
    for command in (main.commands["status"], main.commands["discard"]):
        takes_value = {
            name
            for p in command.params
            if isinstance(p, click.Option) and not p.is_flag
            for name in p.opts
        }
        assert not {o for o in takes_value if "pass" in o or o == "--key"}, takes_value


# -- files that are not (or no longer) outboxes ----------------------------------------------


@pytest.mark.parametrize("kind", ["plain sqlite", "text", "damaged"])
def test_a_file_that_will_not_open_says_which_and_is_left_alone(
    outbox: tuple[Path, list[str]], key_file: Path, tmp_path: Path, kind: str
) -> None:
    if kind == "plain sqlite":
        path = tmp_path / "plain.db"
        with sqlite3.connect(path) as plain:
            plain.execute("create table t (a)")
        expected = f"Error: {path} is not an outbox: it is a plain, unencrypted SQLite database"
    elif kind == "text":
        path = tmp_path / "notes.txt"
        path.write_text("shopping list\n")
        expected = f"Error: {path} is not an outbox: 14 bytes is not a whole number of"
    else:
        path, _ = outbox
        data = bytearray(path.read_bytes())
        data[1000] ^= 0xFF
        path.write_bytes(bytes(data))
        expected = f"Error: the outbox {path} is damaged: page 1 does not decrypt, but"
    before = files_of(path.parent)
    result = run("status", "--db", str(path), "--key-file", str(key_file))
    assert result.exit_code == 1
    assert result.output.startswith(expected), result.output
    assert result.output.count("\n") == 1
    assert files_of(path.parent) == before


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
