"""The benchmark table: goals are judged only on a full run, never on quick sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import __main__ as bench

FIGURES = {"record_vs_sqlite": 0.1, "drain_vs_naive": 2.0, "entries": 12}


@pytest.fixture
def fixed_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    def run_suite(*args: Any, **kw: Any) -> dict[str, Any]:
        return dict(FIGURES)

    monkeypatch.setattr(bench, "run_suite", run_suite)


@pytest.mark.usefixtures("fixed_figures")
def test_a_quick_run_prints_the_figures_without_judging_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--quick", "--out", str(tmp_path / "q.json")]) == 0
    out = capsys.readouterr().out
    assert "MISSED" not in out and " met" not in out and "goal" not in out
    for key in FIGURES:
        assert key in out
    assert (tmp_path / "q.json").exists()


@pytest.mark.usefixtures("fixed_figures")
def test_a_full_run_says_where_each_goal_stands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--out", str(tmp_path / "full.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("record_vs_sqlite") and "MISSED" in line for line in lines)
    assert any(line.startswith("drain_vs_naive") and line.endswith("met") for line in lines)
