"""A server process that dies before it is ready says why, even without a log file."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations.procs import server_process


def test_a_server_that_dies_at_start_shows_its_output(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'server.db'}"
    with pytest.raises(RuntimeError) as caught, server_process(url):
        pass
    message = str(caught.value)
    assert "before it was ready" in message
    assert "--- server output ---" in message
    assert "missing-folder" in message  # the server's own one-line reason
