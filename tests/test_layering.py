"""Nothing outside client_sync imports its private modules; the layers import downward.

benchmarks, simulations and server_sync use the client's public API (``client_sync``,
``client_sync.errors``, ``client_sync.cli``); a ``client_sync._x`` module may change
shape with any commit. Checked on the source (every import statement, lazy ones too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Packages that may only reach the client through its public modules.
OUTSIDERS = ("benchmarks", "simulations", "server_sync", "protocol", "conflict", "peer")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a source file, relative ones left out."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def private_client_imports(package: str) -> list[str]:
    """``file:line module`` for each import of a ``client_sync._private`` module."""
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imports(path):
            parts = module.split(".")
            if parts[0] == "client_sync" and any(p.startswith("_") for p in parts[1:2]):
                bad.append(f"{path.relative_to(ROOT)}:{line} {module}")
    return bad


@pytest.mark.parametrize("package", [p for p in OUTSIDERS if (ROOT / p).is_dir()])
def test_no_private_client_module_is_imported_from(package: str) -> None:
    assert private_client_imports(package) == []


def test_the_check_finds_a_private_import(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text(
        "import client_sync._outbox\n"
        "from client_sync._store import Store\n"
        "from client_sync import _clock\n"
        "def f():\n    from client_sync import SyncClient\n"
    )
    names = [m for _, m in imports(source)]
    assert "client_sync._outbox" in names and "client_sync._store" in names
    assert "client_sync._clock" in names and "client_sync.SyncClient" in names


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("protocol", ("client_sync", "server_sync", "conflict", "simulations", "benchmarks")),
        ("conflict", ("client_sync", "server_sync", "protocol", "simulations", "benchmarks")),
        ("client_sync", ("server_sync", "simulations", "benchmarks")),
        ("server_sync", ("client_sync", "simulations", "benchmarks")),
    ],
)
def test_layers_import_only_downward(package: str, forbidden: tuple[str, ...]) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} {module}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, module in imports(path)
        if module.split(".")[0] in forbidden
    ]
    assert bad == []


def test_check_version_has_one_definition() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for package in ("protocol", "conflict", "client_sync", "server_sync", "simulations")
        for path in sorted((ROOT / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and node.name == "check_version"
    ]
    assert len(found) == 1, found  # Registry.check_version (codec: check_protocol_version)
