"""Run a child process for a test; a failure shows the child's stderr, never just its status."""

from __future__ import annotations

import subprocess
import sys
from typing import Any


def run_python(code: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` (text, output captured, 60 s); fail with its stderr if it fails."""
    kwargs.setdefault("timeout", 60)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, **kwargs
    )
    assert done.returncode == 0, (
        f"child exited with {done.returncode}\n--- stderr ---\n{done.stderr}"
        f"\n--- stdout ---\n{done.stdout}"
    )
    return done
