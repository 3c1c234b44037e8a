"""Run the benchmarks, gather the figures, render the table and the JSON file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import apply, coldstart, devices, drain, drain_pg, fleet, record, single
from ._common import Sizes, machine

BENCHMARKS: dict[str, Callable[[Sizes, Path | None], dict[str, Any]]] = {
    "record": record.run,
    "drain": drain.run,
    "drain_pg": drain_pg.run,
    "single": single.run,
    "apply": apply.run,
    "coldstart": coldstart.run,
    "devices": devices.run,
    "fleet": fleet.run,
}

#: The issue's goals: (key, comparison, target). Goals to work toward, not gates.
GOALS: tuple[tuple[str, str, float], ...] = (
    ("record_vs_sqlite", ">=", 0.6),
    ("tx100_vs_sqlite", ">=", 0.6),
    ("drain_vs_naive", ">=", 1.5),
    ("drain_pg_vs_naive", ">=", 1.0),
    ("bytes_per_entry_vs_naive", "<=", 0.19),
    ("bytes_single_entry_vs_naive", "<=", 0.5),
    ("apply_1m_vs_10k", ">=", 0.85),
    ("apply_1m_vs_10k_pg", ">=", 0.85),
    ("apply_vs_raw", ">=", 0.2),
    ("apply_vs_raw_pg", ">=", 0.2),
    ("rss_100k_vs_1k", "<=", 1.5),
    ("fleet_view_10k_vs_100", "<=", 2.0),
    ("fleet_view_p99_10k_vs_100", "<=", 2.0),
    ("device_audit_10k_vs_100", "<=", 2.0),
    ("device_audit_p99_10k_vs_100", "<=", 2.0),
)


def run_suite(
    sizes: Sizes,
    only: Sequence[str] = (),
    workdir: Path | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> dict[str, Any]:
    """Run the chosen benchmarks (all by default); return figures, sizes and machine facts."""
    figures: dict[str, Any] = {}
    durations: dict[str, float] = {}
    for name in only or tuple(BENCHMARKS):
        progress(f"running {name} …")
        start = time.perf_counter()
        figures.update(BENCHMARKS[name](sizes, workdir))
        durations[name] = round(time.perf_counter() - start, 1)
        progress(f"  {name} done in {durations[name]} s")
    return {
        **figures,
        "sizes": {k: getattr(sizes, k) for k in sizes.__dataclass_fields__ if k != "postgres_url"},
        "postgres": bool(sizes.postgres_url),
        "durations_s": durations,
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def format_table(results: dict[str, Any], *, goals: bool = True) -> str:
    """The figures as a readable table; with ``goals``, those first with where each stands.

    A quick run (tiny sizes) passes ``goals=False``: its figures say nothing about the
    goals, so it prints them plainly instead of "met" or "MISSED".
    """
    lines = [f"{'figure':<34} {'value':>12}  goal" if goals else f"{'figure':<34} {'value':>12}"]
    shown = set()
    for key, op, target in GOALS if goals else ():
        if key not in results:
            continue
        value = results[key]
        met = value >= target if op == ">=" else value <= target
        lines.append(f"{key:<34} {value:>12.3f}  {op} {target}  {'met' if met else 'MISSED'}")
        shown.add(key)
    if goals:
        lines.append("")
    for key, value in results.items():
        if key in shown or not isinstance(value, int | float) or isinstance(value, bool):
            continue
        lines.append(
            f"{key:<34} {value:>12.3f}" if isinstance(value, float) else f"{key:<34} {value:>12}"
        )
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write ``results`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
