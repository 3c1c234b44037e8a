"""The pure core pulls in no I/O library: protocol and conflict stay sans-I/O."""

from __future__ import annotations

import json

import pytest

from tests._child import run_python

# ``socket`` itself is not listed: marshmallow imports stdlib email.utils, which
# imports it without opening anything. What must never load is a client of a network
# or a database.
FORBIDDEN = (
    "sqlalchemy",
    "flask",
    "httpx",
    "zeroconf",
    "sqlcipher3",
    "sqlite3",
    "ssl",
    "http.client",
    "asyncio",
    "client_sync",
    "server_sync",
    "peer",
)


@pytest.mark.parametrize("package", ["protocol", "conflict"])
def test_core_imports_no_io(package: str) -> None:
    code = f"import sys, json, {package}; print(json.dumps(sorted(sys.modules)))"
    out = run_python(code).stdout
    loaded = set(json.loads(out))
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)
