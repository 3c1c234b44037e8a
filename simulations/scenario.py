"""Scenario files (TOML) and the schedule a seed turns them into.

A scenario declares devices (in groups), their workload, each channel's network
profile over time, crashes and server restarts, a duration in *simulated* seconds
and a time scale (real seconds per simulated second). ``build_schedule(scenario)``
expands it, with the scenario's seed, into exact link segments per device channel
and exact crash times: the same seed always gives the same schedule. The ``[short]``
table, merged over the file with ``short=True``, is the form CI runs.

A device group may list ``offline = [[start, end], ...]``: simulated seconds in which
both of its channels are cut (every connection reset), whatever their profiles say.
That is the known offline schedule the offline audit is held to (simulations/audit.py).
"""

from __future__ import annotations

import itertools
import random
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .job import Workload
from .profiles import PROFILES, Segment, cut, heal, segments

__all__ = [
    "Crash",
    "DeviceGroup",
    "DeviceSchedule",
    "Phase",
    "Scenario",
    "ScenarioError",
    "Schedule",
    "ServerRestart",
    "Workload",
    "build_schedule",
    "builtin_names",
    "load_scenario",
]


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Phase:
    """From simulated second ``at`` on, the channel follows ``profile``."""

    at: float
    profile: str


@dataclass(frozen=True, slots=True)
class DeviceGroup:
    """``count`` devices alike; named ``name`` (one) or ``name-1..name-N``."""

    name: str
    count: int
    workload: Workload
    wifi: tuple[Phase, ...]
    cellular: tuple[Phase, ...]
    protocol_version: str | None = None
    upgrade_at: float | None = None
    #: Simulated (start, end) intervals in which both channels are cut.
    offline: tuple[tuple[float, float], ...] = ()

    @property
    def device_names(self) -> list[str]:
        """The names of the group's devices."""
        if self.count == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(1, self.count + 1)]


@dataclass(frozen=True, slots=True)
class Crash:
    """SIGKILL ``device`` and start it again ``restart_after`` later.

    ``device`` is a name, "all", or "random" (``count`` seeded picks of device and
    time after ``at``). With ``after_recorded`` N the kill waits, from ``at`` on, until
    the device's ledger holds N entries: "killed right after the third record()".
    """

    at: float
    device: str
    restart_after: float = 0.0
    count: int = 1
    after_recorded: int = 0


@dataclass(frozen=True, slots=True)
class ServerRestart:
    """Stop the server at ``at`` and start it again ``down_for`` simulated seconds later."""

    at: float
    down_for: float = 0.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """One parsed scenario file (short form already merged in, if asked for)."""

    name: str
    description: str
    seed: int
    duration: float
    time_scale: float
    drain_timeout: float
    groups: tuple[DeviceGroup, ...]
    crashes: tuple[Crash, ...] = ()
    server_restarts: tuple[ServerRestart, ...] = ()
    rate_limit_device: str | None = None
    rate_limit_total: str | None = None
    rate_limit_window: str | None = None
    expect: dict[str, int] = field(default_factory=dict)
    short: bool = False
    source: str = ""

    def with_seed(self, seed: int | None) -> Scenario:
        """This scenario with another seed (None: unchanged)."""
        if seed is None:
            return self
        from dataclasses import replace

        return replace(self, seed=seed)


@dataclass(frozen=True, slots=True)
class DeviceSchedule:
    """One device's exact timeline: link segments per channel, crashes, upgrade."""

    name: str
    group: str
    wifi: tuple[Segment, ...]
    cellular: tuple[Segment, ...]
    crashes: tuple[tuple[float, float, int], ...]  # (at, restart_after, after_recorded)
    upgrade_at: float | None
    offline: tuple[tuple[float, float], ...] = ()  # the scenario's cuts, both channels


@dataclass(frozen=True, slots=True)
class Schedule:
    """Everything that will happen, in simulated seconds, for one seed."""

    seed: int
    duration: float
    devices: tuple[DeviceSchedule, ...]
    server_restarts: tuple[ServerRestart, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the report embeds it)."""
        return {
            "seed": self.seed,
            "duration": self.duration,
            "server_restarts": [[r.at, r.down_for] for r in self.server_restarts],
            "devices": [
                {
                    "name": d.name,
                    "group": d.group,
                    "wifi": [s.as_list() for s in d.wifi],
                    "cellular": [s.as_list() for s in d.cellular],
                    "crashes": [list(c) for c in d.crashes],
                    "upgrade_at": d.upgrade_at,
                    "offline": [list(i) for i in d.offline],
                }
                for d in self.devices
            ],
        }


#: Expectations a scenario may add to the always-on checks (lost, duplicated, ...).
EXPECT_KEYS = {
    "min_429": "at least this many 429 answers seen (the server shed load)",
    "max_5xx": "at most this many 5xx answers seen",
    "min_upgrade_required": "at least this many 426 upgrade_required answers seen",
    "min_captive_answers": "at least this many requests answered by a captive portal",
    "min_cellular_deliveries": "at least this many batches delivered on cellular",
    "max_offline_error_pct": (
        "each device's audited offline time within this many percent of the ground truth"
    ),
}


#: One line per network profile, for ``python -m simulations list``.
PROFILES_HELP = "\n".join(f"  {name:16} {text}" for name, (text, _) in sorted(PROFILES.items()))


def builtin_names() -> list[str]:
    """Names of the scenarios shipped in simulations/scenarios/."""
    folder = resources.files("simulations") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scenario(spec: str | Path, *, short: bool = False) -> Scenario:
    """Parse a scenario file, or a built-in one by name; raise ScenarioError if bad."""
    text, source = _read(spec)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return _parse(raw, short=short, source=source)
    except ScenarioError as exc:
        raise ScenarioError(f"{source}: {exc}") from None


def build_schedule(scenario: Scenario) -> Schedule:
    """Expand ``scenario`` with its seed into exact segments and crash times."""
    devices: list[DeviceSchedule] = []
    names = [n for g in scenario.groups for n in g.device_names]
    crashes: dict[str, list[tuple[float, float, int]]] = {n: [] for n in names}
    rng = random.Random(f"{scenario.seed}:crashes")
    for crash in scenario.crashes:
        if crash.device == "random":
            for _ in range(crash.count):
                when = round(rng.uniform(crash.at, scenario.duration * 0.9), 3)
                crashes[rng.choice(names)].append((when, crash.restart_after, 0))
        else:
            for name in names if crash.device == "all" else [crash.device]:
                crashes[name].append((crash.at, crash.restart_after, crash.after_recorded))
    for group in scenario.groups:
        for name in group.device_names:
            devices.append(
                DeviceSchedule(
                    name=name,
                    group=group.name,
                    wifi=_channel(scenario, name, "wifi", group.wifi, group.offline),
                    cellular=_channel(scenario, name, "cellular", group.cellular, group.offline),
                    crashes=tuple(sorted(crashes[name])),
                    upgrade_at=group.upgrade_at,
                    offline=group.offline,
                )
            )
    return Schedule(scenario.seed, scenario.duration, tuple(devices), scenario.server_restarts)


# -- parsing ------------------------------------------------------------------------


_TOP = {
    "name",
    "description",
    "seed",
    "duration",
    "time_scale",
    "drain_timeout",
    "server",
    "devices",
    "crashes",
    "server_restarts",
    "expect",
    "short",
}


def _read(spec: str | Path) -> tuple[str, str]:
    path = Path(spec)
    if path.suffix != ".toml" and not path.exists():
        name = str(spec)
        if name not in builtin_names():
            raise ScenarioError(
                f"no scenario file or built-in scenario {name!r} "
                f"(built-in: {', '.join(builtin_names())})"
            )
        res = resources.files("simulations") / "scenarios" / f"{name}.toml"
        return res.read_text(encoding="utf-8"), f"built-in {name}"
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text") from exc


def _parse(raw: dict[str, Any], *, short: bool, source: str) -> Scenario:
    _keys(raw, _TOP, "the file")
    if short:
        raw = _merge_short(raw)
    name = _get(raw, "name", str, "the file")
    duration = _num(raw, "duration", "the file", minimum=1.0)
    groups = tuple(_group(g, i, duration) for i, g in enumerate(_list(raw, "devices", "the file")))
    if not groups:
        raise ScenarioError("[[devices]]: at least one device group is needed")
    names = [n for g in groups for n in g.device_names]
    if len(set(names)) != len(names):
        raise ScenarioError(f"device names must differ: {sorted(names)}")
    crashes = tuple(_crash(c, i, names, duration) for i, c in enumerate(raw.get("crashes", [])))
    restarts = tuple(_restart(r, i, duration) for i, r in enumerate(raw.get("server_restarts", [])))
    server = raw.get("server", {})
    _keys(server, {"rate_limit_device", "rate_limit_total", "rate_limit_window"}, "[server]")
    expect = raw.get("expect", {})
    _keys(expect, set(EXPECT_KEYS), "[expect]")
    for key, value in expect.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ScenarioError(f"[expect] {key} must be a whole number >= 0")
    time_scale = _num(raw, "time_scale", "the file", minimum=1e-6, default=1.0)
    if time_scale > 1:
        raise ScenarioError("time_scale must be within (0, 1]: real seconds per simulated second")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ScenarioError("seed must be a whole number")
    return Scenario(
        name=name,
        description=str(raw.get("description", "")),
        seed=seed,
        duration=duration,
        time_scale=time_scale,
        drain_timeout=_num(raw, "drain_timeout", "the file", minimum=1.0, default=120.0),
        groups=groups,
        crashes=crashes,
        server_restarts=restarts,
        rate_limit_device=_opt_str(server, "rate_limit_device"),
        rate_limit_total=_opt_str(server, "rate_limit_total"),
        rate_limit_window=_opt_str(server, "rate_limit_window"),
        expect=dict(expect),
        short=short,
        source=source,
    )


def _merge_short(raw: dict[str, Any]) -> dict[str, Any]:
    """The file with its [short] table laid over it; device groups are matched by name."""
    short = raw.get("short")
    if short is None:
        raise ScenarioError("no [short] table: this scenario has no short form")
    if not isinstance(short, dict):
        raise ScenarioError("[short] must be a table")
    merged = {k: v for k, v in raw.items() if k != "short"}
    for key, value in short.items():
        if key not in _TOP - {"short", "name"}:
            raise ScenarioError(f"[short] {key}: not something a short form can change")
        if key == "devices":
            if not isinstance(value, dict):
                raise ScenarioError("[short.devices] must be a table of group names")
            groups = [dict(g) for g in merged.get("devices", []) if isinstance(g, dict)]
            by_name = {g.get("name"): g for g in groups}
            for group_name, over in value.items():
                if group_name not in by_name or not isinstance(over, dict):
                    raise ScenarioError(f"[short.devices.{group_name}]: no such device group")
                _deep_update(by_name[group_name], over)
            merged["devices"] = groups
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_update(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _deep_update(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _deep_update(dict(base[key]), value)
        else:
            base[key] = value
    return base


_GROUP = {
    "name", "count", "workload", "wifi", "cellular", "protocol_version", "upgrade_at", "offline",
}  # fmt: skip
_WORK = {"entries", "entries_per_minute", "entry_size", "reject_share", "tx_sizes"}


def _group(raw: Any, index: int, duration: float) -> DeviceGroup:
    where = f"[[devices]] #{index + 1}"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be a table")
    _keys(raw, _GROUP, where)
    name = _get(raw, "name", str, where)
    where = f"[[devices]] {name!r}"
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ScenarioError(f"{where}: name may hold letters, digits, - and _ only")
    count = raw.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 200:
        raise ScenarioError(f"{where}: count must be a whole number within 1..200")
    work = raw.get("workload")
    if not isinstance(work, dict):
        raise ScenarioError(f"{where}: a [devices.workload] table is needed")
    wwhere = f"{where} workload"
    _keys(work, _WORK, wwhere)
    entries = work.get("entries")
    if not isinstance(entries, int) or isinstance(entries, bool) or not 0 <= entries <= 1_000_000:
        raise ScenarioError(f"{wwhere}: entries must be a whole number within 0..1000000")
    tx = work.get("tx_sizes", [1, 3])
    if (
        not isinstance(tx, list)
        or len(tx) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in tx)
        or not 1 <= tx[0] <= tx[1] <= 500
    ):
        raise ScenarioError(f"{wwhere}: tx_sizes must be [min, max] with 1 <= min <= max <= 500")
    share = _num(work, "reject_share", wwhere, minimum=0.0, default=0.0)
    if share > 1:
        raise ScenarioError(f"{wwhere}: reject_share must be within 0..1")
    workload = Workload(
        entries=entries,
        entries_per_minute=_num(work, "entries_per_minute", wwhere, minimum=0.0, default=0.0),
        entry_size=int(_num(work, "entry_size", wwhere, minimum=1.0, default=200.0)),
        reject_share=share,
        tx_min=tx[0],
        tx_max=tx[1],
    )
    if workload.entry_size > 2000:
        raise ScenarioError(f"{wwhere}: entry_size must be <= 2000 (the server's notes limit)")
    version = _opt_str(raw, "protocol_version")
    upgrade_at = raw.get("upgrade_at")
    if upgrade_at is not None:
        upgrade_at = _num(raw, "upgrade_at", where, minimum=0.0)
        if version is None:
            raise ScenarioError(f"{where}: upgrade_at needs an old protocol_version")
    return DeviceGroup(
        name=name,
        count=count,
        workload=workload,
        wifi=_phases(raw, "wifi", where, duration),
        cellular=_phases(raw, "cellular", where, duration),
        protocol_version=version,
        upgrade_at=upgrade_at,
        offline=_offline(raw, where, duration),
    )


def _offline(raw: dict[str, Any], where: str, duration: float) -> tuple[tuple[float, float], ...]:
    """``offline = [[start, end], ...]``: increasing, apart, within [0, duration]."""
    value = raw.get("offline", [])
    if not isinstance(value, list) or len(value) > 10_000:
        raise ScenarioError(f"{where} offline: a list of [start, end] intervals")
    out: list[tuple[float, float]] = []
    for item in value:
        pair = isinstance(item, list) and len(item) == 2 and all(map(_is_number, item))
        if not pair or not 0 <= item[0] < item[1] <= duration:  # NaN fails, inf is > duration
            raise ScenarioError(
                f"{where} offline: each interval is [start, end] simulated seconds with "
                f"0 <= start < end <= duration ({duration:g}); got {item!r:.80}"
            )
        out.append((float(item[0]), float(item[1])))
    if any(b[0] < a[1] for a, b in itertools.pairwise(out)):
        raise ScenarioError(f"{where} offline: intervals must be in order and not overlap")
    return tuple(out)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _phases(raw: dict[str, Any], channel: str, where: str, duration: float) -> tuple[Phase, ...]:
    value = raw.get(channel, "healthy")
    if isinstance(value, str):
        value = [{"at": 0, "profile": value}]
    if not isinstance(value, list) or not value:
        raise ScenarioError(f"{where} {channel}: a profile name or a list of {{at, profile}}")
    phases = []
    for item in value:
        if not isinstance(item, dict):
            raise ScenarioError(f"{where} {channel}: each phase is a table {{at, profile}}")
        _keys(item, {"at", "profile"}, f"{where} {channel}")
        profile = _get(item, "profile", str, f"{where} {channel}")
        if profile not in PROFILES:
            raise ScenarioError(
                f"{where} {channel}: unknown profile {profile!r} "
                f"(known: {', '.join(sorted(PROFILES))})"
            )
        phases.append(Phase(_num(item, "at", f"{where} {channel}", minimum=0.0), profile))
    if phases[0].at != 0:
        raise ScenarioError(f"{where} {channel}: the first phase must start at 0")
    if any(b.at <= a.at for a, b in itertools.pairwise(phases)):
        raise ScenarioError(f"{where} {channel}: phases must be in increasing order of at")
    if phases[-1].at >= duration:
        raise ScenarioError(f"{where} {channel}: a phase starts after the duration ({duration})")
    return tuple(phases)


def _crash(raw: Any, index: int, names: list[str], duration: float) -> Crash:
    where = f"[[crashes]] #{index + 1}"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be a table")
    _keys(raw, {"at", "device", "restart_after", "count", "after_recorded"}, where)
    device = _get(raw, "device", str, where)
    if device not in ("random", "all") and device not in names:
        raise ScenarioError(f"{where}: no device {device!r} (devices: {', '.join(names)})")
    at = _num(raw, "at", where, minimum=0.0)
    if at >= duration:
        raise ScenarioError(f"{where}: at must be before the duration ({duration})")
    count = raw.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
        raise ScenarioError(f"{where}: count must be a whole number within 1..1000")
    restart = _num(raw, "restart_after", where, minimum=0.0, default=0.0)
    after = raw.get("after_recorded", 0)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise ScenarioError(f"{where}: after_recorded must be a whole number >= 0")
    return Crash(at, device, restart, count, after)


def _restart(raw: Any, index: int, duration: float) -> ServerRestart:
    where = f"[[server_restarts]] #{index + 1}"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be a table")
    _keys(raw, {"at", "down_for"}, where)
    at = _num(raw, "at", where, minimum=0.0)
    if at >= duration:
        raise ScenarioError(f"{where}: at must be before the duration ({duration})")
    return ServerRestart(at, _num(raw, "down_for", where, minimum=0.0, default=0.0))


def _keys(raw: Any, allowed: set[str], where: str) -> None:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be a table")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )


def _get(raw: dict[str, Any], key: str, kind: type[str], where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, kind) or not value:
        raise ScenarioError(f"{where}: {key} is required and must be a non-empty string")
    return value


def _opt_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ScenarioError(f"{key} must be a string or a number")
    return str(value)


def _num(
    raw: dict[str, Any],
    key: str,
    where: str,
    *,
    minimum: float,
    default: float | None = None,
) -> float:
    value = raw.get(key, default)
    if value is None:
        raise ScenarioError(f"{where}: {key} is required")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ScenarioError(f"{where}: {key} must be a number >= {minimum:g} (got {value!r})")
    return float(value)


def _list(raw: dict[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key)
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: [[{key}]] is required")
    return value


def _channel(
    scenario: Scenario,
    device: str,
    channel: str,
    phases: tuple[Phase, ...],
    offline: tuple[tuple[float, float], ...],
) -> tuple[Segment, ...]:
    out: list[Segment] = []
    for index, phase in enumerate(phases):
        end = phases[index + 1].at if index + 1 < len(phases) else scenario.duration
        rng = random.Random(f"{scenario.seed}:{device}:{channel}:{index}")
        out.extend(segments(phase.profile, phase.at, end, rng))
    out = cut(out, offline)  # after drawing: the cuts leave the seeded timeline as it was
    out.append(heal(scenario.duration))
    return tuple(out)
