"""An app that embeds the client installs only the client: ``pip install 'fieldsync[client]'``.

A fresh virtual environment gets the ``client`` extra from a copy of this working
tree; no server package may be importable there, and a record-and-sync from it
reaches a real server process started from the main environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simulations.procs import enrol, server_process

ROOT = Path(__file__).resolve().parents[1]

#: What ``pip install 'fieldsync[client]'`` copies: the packages and the build files.
SOURCES = ("protocol", "conflict", "client_sync", "server_sync", "simulations")

#: Packages only the server needs: none may come with the client extra.
SERVER_ONLY = (
    "flask",
    "werkzeug",
    "gunicorn",
    "waitress",
    "alembic",
    "apispec",
    "psycopg",
    "prometheus_client",
)

#: The client's own imports, and the protocol's schemas (marshmallow is a client package).
CLIENT = ("client_sync", "protocol", "protocol._schemas", "conflict", "sqlcipher3", "msgspec")

#: Seconds for the whole install (a cold pip cache downloads ~15 MB of wheels).
INSTALL_TIMEOUT = 540

RECORD_AND_SYNC = """
import json, sys
from client_sync import HttpChannel, SyncClient
url, device_id, token, path = sys.argv[1:5]
channel = HttpChannel("wifi", url, token)
with SyncClient(path, bytes(range(32)), device_id=device_id, channels=[channel]) as client:
    op_id = client.record("customers", "c-1", {"name": "Zhang Wei", "phone": "13912345678"})
    report = client.sync_now()
    print(json.dumps({"op_id": op_id, "stats": client.stats(), "modules": sorted(sys.modules)}))
"""

FIND = """
import importlib.util, json, sys
print(json.dumps({name: importlib.util.find_spec(name) is not None for name in sys.argv[1:]}))
"""


def _run(cmd: list[str], cwd: Path, timeout: float) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{cmd[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding ``fieldsync[client]`` built from this working tree."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "fieldsync"
    source.mkdir()
    for name in SOURCES:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], base, 120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, f"{source}[client]"], base, INSTALL_TIMEOUT)
    return venv


@pytest.mark.slow
@pytest.mark.timeout(INSTALL_TIMEOUT + 120)
def test_the_client_extra_brings_no_server_package(client_venv: Path, tmp_path: Path) -> None:
    python = str(client_venv / "bin" / "python")
    found = json.loads(_run([python, "-c", FIND, *SERVER_ONLY, *CLIENT], tmp_path, 60))
    assert [name for name in SERVER_ONLY if found[name]] == []
    assert [name for name in CLIENT if not found[name]] == []


@pytest.mark.slow
@pytest.mark.timeout(INSTALL_TIMEOUT + 120)
def test_a_client_only_install_records_and_syncs_with_a_real_server(
    client_venv: Path, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'server.db'}"
    with server_process(db_url, log=tmp_path / "server.log") as server:
        device = enrol("packaged app", db_url)
        out = _run(
            [
                str(client_venv / "bin" / "python"),
                "-c",
                RECORD_AND_SYNC,
                server.url,
                device.device_id,
                device.token,
                str(tmp_path / "outbox.db"),
            ],
            tmp_path,
            120,
        )
        rows = server.ops(device.device_id)
    answer = json.loads(out.splitlines()[-1])
    assert [(row.op_id, row.status) for row in rows] == [(answer["op_id"], "applied")]
    assert answer["stats"]["acked"] == 1 and answer["stats"]["pending"] == 0
    loaded = {name.split(".")[0] for name in answer["modules"]}
    assert loaded.isdisjoint(SERVER_ONLY), "the client imported a server package"
    assert "client_sync" in loaded
