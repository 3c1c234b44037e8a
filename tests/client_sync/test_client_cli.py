"""The ``fieldsync`` device tools: keygen, status, discard; one-line errors."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from client_sync import SyncClient
from client_sync.cli import main
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
