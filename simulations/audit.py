"""The offline audit's ground truth: when a device had no link at all, from its schedule.

A device is offline while neither of its channels can get a request through (no
segment of either is up: the scenario's ``offline`` cuts, and any profile's stalls,
resets, portals). ``offline_periods`` gives those periods in simulated seconds from
the schedule alone, before anything runs; the report shows their total next to what
the server's offline audit says for the same device, and the error between them.

The audited side comes from the server's audit API (issue 9); until the runner reads
it, ``audited`` is None and the report says "not audited".
"""

from __future__ import annotations

import itertools
from typing import Any

from .profiles import Segment
from .scenario import DeviceSchedule, Schedule

__all__ = ["offline_periods", "offline_rows"]


def offline_periods(device: DeviceSchedule, duration: float) -> list[tuple[float, float]]:
    """Simulated [start, end) periods within the run in which no channel of ``device`` is up."""
    channels = (device.wifi, device.cellular)
    edges = sorted({0.0, duration, *(s.start for c in channels for s in c if s.start < duration)})
    periods: list[tuple[float, float]] = []
    for start, end in itertools.pairwise(edges):
        if any(_up_at(c, start) for c in channels):
            continue
        if periods and periods[-1][1] == start:
            periods[-1] = (periods[-1][0], end)
        else:
            periods.append((start, end))
    return periods


def offline_rows(
    schedule: Schedule, time_scale: float, audited: dict[str, float | None]
) -> list[dict[str, Any]]:
    """Per device: ground-truth offline time next to the audited one (real seconds in)."""
    rows = []
    for device in schedule.devices:
        periods = offline_periods(device, schedule.duration)
        truth = float(sum(end - start for start, end in periods))
        real = audited.get(device.name)
        seen = None if real is None else real / time_scale
        rows.append(
            {
                "device": device.name,
                "offline_truth_s": round(truth, 3),
                "offline_truth_real_s": round(truth * time_scale, 3),
                "offline_audited_real_s": None if real is None else round(real, 3),
                "offline_audited_s": None if seen is None else round(seen, 3),
                "error_pct": None if seen is None else round(_error_pct(truth, seen), 2),
                "periods": [[round(a, 3), round(b, 3)] for a, b in periods],
            }
        )
    return rows


def _up_at(segments: tuple[Segment, ...], t: float) -> bool:
    """Whether the segment in force at simulated time ``t`` lets requests through."""
    current = [s for s in segments if s.start <= t and (s.end is None or t < s.end)]
    return bool(current) and current[-1].up


def _error_pct(truth: float, seen: float) -> float:
    if truth == 0:
        return 0.0 if seen == 0 else 100.0
    return abs(seen - truth) / truth * 100
