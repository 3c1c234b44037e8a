"""What a device process is told to do, as data: a ``DeviceJob`` holding a ``Workload``.

The runner (and the demo, and the crash tests) write a job to a JSON file and start
``python -m simulations.rep JOB.json``; the device process reads the same types
back. Nothing is flattened into command-line options and rebuilt under other names.

Times in a job are simulated: ``time_scale`` real seconds pass per simulated one,
for the recording rate and every retry wait alike (``RetryPolicy.scaled``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Workload:
    """What a device records, in all: how many entries, how grouped, which are refused.

    ``entries`` is the device's total: a restarted device records what its ledger
    does not hold yet. ``entries_per_minute`` is in simulated time (0: as fast as
    the outbox takes them). ``entry_size`` is the notes' length (0: 50-250
    characters). ``reject_share`` refuses a seeded random share of the entries,
    ``reject_every`` every Nth one: their notes are longer than the server allows.
    """

    entries: int
    entries_per_minute: float = 0.0
    entry_size: int = 0
    reject_share: float = 0.0
    reject_every: int = 0
    tx_min: int = 1
    tx_max: int = 3


@dataclass(frozen=True, slots=True)
class DeviceJob:
    """Everything one device process needs: its outbox, identity, links and workload.

    ``hold_until`` names a file: after recording, the device keeps syncing in the
    background until it exists (or ``hold_timeout`` s), then drains for at most
    ``drain_timeout`` s unless ``drain`` is off. ``events`` receives JSON lines.
    """

    db: str
    key_hex: str
    device_id: str
    token: str
    url: str
    ledger: str
    workload: Workload
    cellular_url: str | None = None
    events: str | None = None
    time_scale: float = 1.0
    http_timeout: float = 5.0
    protocol_version: str | None = None
    sample_every: float = 0.25
    hold_until: str | None = None
    hold_timeout: float = 3600.0
    drain: bool = True
    drain_timeout: float = 60.0
    seed: int = 0


def write_job(job: DeviceJob, path: Path) -> Path:
    """Write ``job`` to ``path`` as JSON; return the path."""
    path.write_text(json.dumps(dataclasses.asdict(job), indent=2, sort_keys=True) + "\n")
    return path


def read_job(path: Path) -> DeviceJob:
    """The job in ``path``; ValueError naming the problem if it is not one."""
    raw: Any = json.loads(path.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("workload"), dict):
        raise ValueError(f"{path}: not a device job (an object with a workload object)")
    try:
        return DeviceJob(**{**raw, "workload": Workload(**raw["workload"])})
    except TypeError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def rep_command(job: DeviceJob, path: Path) -> list[str]:
    """Write ``job`` to ``path``; the command line that runs a device process on it."""
    return [sys.executable, "-m", "simulations.rep", str(write_job(job, path))]
