"""server_sync stands on protocol and conflict only: never on the device library."""

from __future__ import annotations

import json

from tests._child import run_python


def test_server_sync_does_not_import_client_sync() -> None:
    modules = "server_sync.cli, server_sync.wsgi"
    code = f"import sys, json, {modules}; print(json.dumps(sorted(sys.modules)))"
    out = run_python(code, env={"FIELDSYNC_DATABASE_URL": "sqlite://", "PATH": ""}).stdout
    loaded = set(json.loads(out))
    assert "server_sync.service" in loaded
    assert not {m for m in loaded if m.split(".")[0] in {"client_sync", "peer", "simulations"}}
