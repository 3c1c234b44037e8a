"""The child-process helper shows what a failing child printed."""

from __future__ import annotations

import pytest

from tests._child import run_python


def test_a_failing_child_shows_its_stderr() -> None:
    with pytest.raises(AssertionError, match="boom from the child"):
        run_python("import sys; sys.exit('boom from the child')")


def test_a_passing_child_returns_its_output() -> None:
    assert run_python("print('ok')").stdout == "ok\n"
