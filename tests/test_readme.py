"""The README's "Embedding the client" runs as written, after the steps it shows.

The shell steps run as printed (the server's command line pointed at a real server
process's database), what they print goes into the environment variables the
README names, and the example runs in a fresh interpreter against that server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from client_sync import HttpChannel, SyncClient
from protocol import Registry
from server_sync import add_device, create_app, get_record
from server_sync.extension import server_state
from simulations.procs import LiveServer, server_cli, server_process

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Embedding the client"


def blocks(language: str) -> list[str]:
    """The ``language`` code blocks of the README's embedding section, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else len(text)]
    return re.findall(rf"^```{language}\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    """A real server process on SQLite in tmp_path; its log is printed if the test fails."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    server_cli("db", "upgrade", database_url=url)
    log = tmp_path / "server.log"
    try:
        with server_process(url, log=log) as server:
            yield server
    finally:
        if log.exists():
            sys.stderr.write(f"--- server log ---\n{log.read_text(errors='replace')}")


def run_steps(device_dir: Path, database_url: str) -> dict[str, Any]:
    """Run the README's shell steps as printed; return the JSON the enrolment printed."""
    (steps,) = blocks("sh")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "FIELDSYNC_DATABASE_URL": database_url,  # the admin's shell, on the server
    }
    enrolment: dict[str, Any] = {}
    for line in steps.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        done = subprocess.run(
            line, shell=True, cwd=device_dir, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        if "--json" in line:
            enrolment = json.loads(done.stdout)
    return enrolment


def test_the_embedding_example_runs_as_written_and_its_entries_reach_the_server(
    live: LiveServer, tmp_path: Path
) -> None:
    device_dir = tmp_path / "phone"
    device_dir.mkdir()
    enrolment = run_steps(device_dir, live.database_url)
    key_file = device_dir / "outbox.key"
    assert len(key_file.read_bytes()) == 32
    example = blocks("python")[0]
    env = {
        **os.environ,
        "FIELDSYNC_URL": live.url,
        "FIELDSYNC_DEVICE_ID": enrolment["device_id"],
        "FIELDSYNC_TOKEN": enrolment["token"],
        "FIELDSYNC_KEY_FILE": str(key_file),
    }
    done = subprocess.run(
        [sys.executable, "-c", example], cwd=device_dir, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "'acked': 3" in done.stdout and "'pending': 0" in done.stdout
    assert (device_dir / "outbox.db").exists()

    stored = live.ops(enrolment["device_id"])
    assert [row.status for row in stored] == ["applied"] * 3
    app = create_app({"DATABASE_URL": live.database_url})
    engine = server_state(app).engine
    try:
        with engine.connect() as conn:
            customer = get_record(conn, "customers", "c-42")
            assert customer is not None and customer["phone"] == "13912345678"  # the rule
            assert get_record(conn, "opportunities", "o-7") is not None
            assert get_record(conn, "followups", "f-9") is not None
    finally:
        engine.dispose()


def test_an_apps_own_collection_as_declared_in_the_readme_syncs(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    exec(blocks("python")[1], namespace)  # pure protocol code: builds ``registry``
    registry = namespace["registry"]
    assert isinstance(registry, Registry)
    (new,) = set(registry.names()) - {"customers", "leads", "followups", "opportunities"}

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'server.db'}", "REGISTRY": registry})
    engine = server_state(app).engine
    with engine.begin() as conn:
        device_id, token = add_device(conn, "rep")
    channel = HttpChannel("wifi", "http://app", token, transport=httpx.WSGITransport(app=app))
    try:
        with SyncClient(
            tmp_path / "outbox.db", os.urandom(32), device_id=device_id, channels=[channel],
            registry=registry,
        ) as client:  # fmt: skip
            client.record("customers", "c-1", {"name": "Wang Fang"})
            client.record(
                new, "v-1", {"customer_id": "c-1", "at": "2026-12-01T09:00+08:00", "summary": "ok"}
            )
            report = client.sync_now()
            assert (report.applied, report.remaining, report.parked) == (2, 0, 0)
        with engine.connect() as conn:
            assert get_record(conn, new, "v-1") is not None
    finally:
        engine.dispose()
