"""Shared helpers: sizes, payloads, interleaved timing, medians, machine facts."""

from __future__ import annotations

import dataclasses
import os
import platform
import random
import sqlite3
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

#: Every benchmark key, id prefix and token it uses is derived from this seed.
SEED = 20261122

#: A raw 32-byte outbox key (benchmarks are not about key derivation).
KEY = bytes(range(32))

_FIRST = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou")
_GIVEN = ("Fang", "Wei", "Min", "Jing", "Lei", "Yan", "Tao", "Jun", "Hui", "Xiu", "Qiang")
_STREETS = ("Nanjing Rd", "Huaihai Rd", "Zhongshan Ave", "Renmin Rd", "Jiefang Rd", "Beijing Rd")
_CITIES = ("Shanghai", "Hangzhou", "Suzhou", "Nanjing", "Wuxi", "Ningbo", "Hefei")
_WORDS = (
    "visited",
    "store",
    "manager",
    "asked",
    "about",
    "pricing",
    "for",
    "the",
    "spring",
    "order",
    "wants",
    "samples",
    "follow",
    "up",
    "next",
    "week",
    "delivery",
    "was",
    "late",
    "discount",
    "volume",
    "contract",
    "renewal",
    "competitor",
    "offered",
    "shelf",
    "space",
    "display",
)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each benchmark is; ``quick()`` proves the code works in seconds."""

    repeats: int = 5
    record_n: int = 500
    tx100_n: int = 10
    drain_entries: int = 10_000
    drain_repeats: int = 3
    apply_small: int = 10_000
    apply_large: int = 1_000_000
    apply_batches: int = 16
    cold_small: int = 1_000
    cold_large: int = 100_000
    cold_repeats: int = 3
    devices: int = 200
    device_batches: int = 15
    device_entries: int = 10
    device_workers: int = 4
    device_clients: int = 4
    fleet_small_devices: int = 100
    fleet_small_events: int = 10_000
    fleet_large_devices: int = 10_000
    fleet_large_events: int = 1_000_000
    fleet_queries: int = 200
    postgres_url: str | None = None

    @classmethod
    def quick(cls, postgres_url: str | None = None) -> Sizes:
        """Tiny sizes: every code path, none of the figures."""
        return cls(
            repeats=2,
            record_n=10,
            tx100_n=2,
            drain_entries=600,
            drain_repeats=1,
            apply_small=200,
            apply_large=2_000,
            apply_batches=2,
            cold_small=100,
            cold_large=1_000,
            cold_repeats=1,
            devices=8,
            device_batches=2,
            device_entries=5,
            device_workers=2,
            device_clients=2,
            fleet_small_devices=10,
            fleet_small_events=1_000,
            fleet_large_devices=100,
            fleet_large_events=10_000,
            fleet_queries=10,
            postgres_url=postgres_url,
        )

    def replace(self, **changes: Any) -> Sizes:
        """A copy with some sizes changed."""
        return dataclasses.replace(self, **changes)


def customer_fields(i: int, rng: random.Random) -> dict[str, Any]:
    """A plausible customer record, ~300 bytes of canonical JSON, different for every ``i``."""
    name = f"{rng.choice(_FIRST)} {rng.choice(_GIVEN)} {i}"
    notes = " ".join(rng.choice(_WORDS) for _ in range(22))
    return {
        "name": name,
        "phone": f"+86 139 {rng.randrange(10_000):04d} {rng.randrange(10_000):04d}",
        "email": f"{name.lower().replace(' ', '.')}@example.com",
        "address": f"{rng.randrange(1, 999)} {rng.choice(_STREETS)}, {rng.choice(_CITIES)}",
        "notes": notes[:150],
    }


def median(values: Sequence[float]) -> float:
    """The median (of a non-empty sequence)."""
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def interleave(
    repeats: int, a: Callable[[int], float], b: Callable[[int], float]
) -> tuple[list[float], list[float]]:
    """Run A B A B … ``repeats`` times, alternating which goes first; each returns seconds."""
    times_a: list[float] = []
    times_b: list[float] = []
    for i in range(repeats):
        order = ((a, times_a), (b, times_b)) if i % 2 == 0 else ((b, times_b), (a, times_a))
        for run, out in order:
            out.append(run(i))
    return times_a, times_b


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of per-repetition ratios: each pair was measured side by side."""
    return median([n / d for n, d in zip(numerators, denominators, strict=True)])


def machine() -> dict[str, Any]:
    """Facts about this machine and the library versions a figure depends on."""
    facts: dict[str, Any] = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_mb": _memory_mb(),
        "sqlite": sqlite3.sqlite_version,
    }
    versions: dict[str, str] = {}
    for dist in (
        "fieldsync",
        "sqlalchemy",
        "sqlcipher3",
        "flask",
        "werkzeug",
        "gunicorn",
        "httpx",
        "psycopg",
        "marshmallow",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    try:
        import sqlcipher3

        versions["sqlcipher_sqlite"] = sqlcipher3.sqlite_version
    except ImportError:  # pragma: no cover - a dependency
        pass
    facts["versions"] = versions
    return facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None
