"""client_sync stands on protocol and conflict only: never on the server or the harness."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import client_sync
from tests._child import run_python

PACKAGE = Path(client_sync.__file__).parent


def test_importing_every_module_loads_no_server_code() -> None:
    modules = sorted(f"client_sync.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    code = f"import sys, json, {', '.join(modules)}; print(json.dumps(sorted(sys.modules)))"
    out = run_python(code).stdout
    loaded = set(json.loads(out))
    assert "client_sync._outbox" in loaded
    assert not {m for m in loaded if m.split(".")[0] in {"server_sync", "peer", "simulations"}}


def test_no_module_names_the_server_in_an_import() -> None:
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.split(".")[0] in {"server_sync", "flask"}], path


def test_the_public_surface_is_short_and_importable() -> None:
    assert len(client_sync.__all__) <= 12
    for name in client_sync.__all__:
        assert getattr(client_sync, name) is not None
    assert (PACKAGE / "py.typed").exists()
