"""A known offline schedule: parsed strictly, laid over both channels, its truth measured.

The truth a device is held to (simulations/audit.py) is the time no channel of it is
up, read from the schedule; the report puts it next to the server's audit and the
``max_offline_error_pct`` expectation compares them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from simulations.audit import offline_periods, offline_rows
from simulations.profiles import OFFLINE, Segment, cut
from simulations.proxy import Link
from simulations.report import build_report, write_report
from simulations.scenario import ScenarioError, build_schedule, load_scenario
from tests.simulations.test_report import T0, device

SCENARIO = """
name = "cuts"
seed = 1
duration = 1000
time_scale = 0.01

[[devices]]
name = "rep-a"
wifi = "healthy"
cellular = "cellular"
offline = OFFLINE
[devices.workload]
entries = 5
"""


def scenario_with(tmp_path: Path, offline: str, extra: str = "") -> Path:
    path = tmp_path / "cuts.toml"
    path.write_text(SCENARIO.replace("OFFLINE", offline) + extra)
    return path


def test_the_cuts_are_on_both_channels_and_are_the_truth(tmp_path: Path) -> None:
    scenario = load_scenario(scenario_with(tmp_path, "[[100, 250], [250.5, 300], [900, 1000]]"))
    (rep,) = build_schedule(scenario).devices
    for channel in (rep.wifi, rep.cellular):
        cuts = [(s.start, s.end) for s in channel if s.link is OFFLINE]
        assert cuts == [(100, 250), (250.5, 300), (900, 1000)]
        assert channel[-1].end is None and channel[-1].up  # healed after the run
    assert rep.offline == ((100, 250), (250.5, 300), (900, 1000))
    assert offline_periods(rep, scenario.duration) == [(100, 250), (250.5, 300), (900, 1000)]
    (row,) = offline_rows(build_schedule(scenario), scenario.time_scale, {"rep-a": 2.0})
    assert (row["offline_truth_s"], row["offline_truth_real_s"]) == (299.5, 2.995)
    assert (row["offline_audited_s"], row["error_pct"]) == (200.0, 33.22)


@pytest.mark.parametrize(
    "offline",
    [
        "[[300, 200]]", "[[-1, 10]]", "[[10, 1001]]", "[[10, 20], [15, 30]]",
        "[[50, 60], [10, 20]]", "[[10]]", "[[true, 20]]", '[["10", 20]]', "[[nan, 20]]",
        "[[10, inf]]", "[10, 20]", '"all day"',
    ],
)  # fmt: skip
def test_a_bad_schedule_gets_a_clear_error(tmp_path: Path, offline: str) -> None:
    with pytest.raises(ScenarioError, match="offline"):
        load_scenario(scenario_with(tmp_path, offline))


def test_cut_splits_segments_and_keeps_the_rest() -> None:
    up = Link("healthy")
    drawn = [Segment(0, 50, up), Segment(50, 100, OFFLINE)]
    assert cut(drawn, ((10, 20), (40, 60))) == [
        Segment(0, 10, up), Segment(10, 20, OFFLINE), Segment(20, 40, up),
        Segment(40, 50, OFFLINE), Segment(50, 60, OFFLINE), Segment(60, 100, OFFLINE),
    ]  # fmt: skip
    assert cut(drawn, ()) == drawn


def test_the_truth_counts_only_time_with_no_channel_up() -> None:
    # subway-day's short form: wifi often down, cellular in tunnels; offline is both.
    scenario = load_scenario("subway-day", short=True)
    rep = build_schedule(scenario).devices[0]
    periods = offline_periods(rep, scenario.duration)
    assert periods, "the subway day has times with no link at all"
    for start, end in periods:
        middle = (start + end) / 2
        for channel in (rep.wifi, rep.cellular):
            (now,) = [s for s in channel[:-1] if s.start <= middle < (s.end or 0)]
            assert not now.up


def offline_report(audited: dict[str, float | None]) -> dict[str, Any]:
    scenario = load_scenario("offline-audit", short=True)
    scenario = dataclasses.replace(scenario, expect={"max_offline_error_pct": 5})
    schedule = build_schedule(scenario)
    names = [d.name for d in schedule.devices]
    counters = {"connections": 1, "bytes_up": 1, "bytes_down": 1, "requests": 1,
                "captive_answers": 0, "statuses": {"200": 1}}  # fmt: skip
    return build_report(
        scenario=scenario, schedule=schedule, devices=[device(n) for n in names],
        proxies={n: (counters, counters) for n in names}, t0=T0, heal_at=6.0, drained_at=7.0,
        server_events=[], database="embedded SQLite", wall_seconds=8.0, audited=audited,
    )  # fmt: skip


def test_the_audit_is_held_to_the_truth_within_the_bound(tmp_path: Path) -> None:
    # Truths (simulated s): rep-a 300, rep-b 520, rep-c 0, rep-d 300; scale 0.01.
    close = {"rep-a": 3.1, "rep-b": 5.0, "rep-c": 0.0, "rep-d": 2.9}
    report = offline_report(close)
    (check,) = [c for c in report["checks"] if "audited offline" in c["check"]]
    assert check["ok"], check
    errors = {r["device"]: r["error_pct"] for r in report["offline_audit"]}
    assert errors == {"rep-a": 3.33, "rep-b": 3.85, "rep-c": 0.0, "rep-d": 3.33}
    write_report(report, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "Offline time: the schedule's truth and the server's audit" in page
    assert "200-500" in page  # rep-a's period

    far = offline_report({**close, "rep-b": 4.0})  # 400 s audited against 520
    (check,) = [c for c in far["checks"] if "audited offline" in c["check"]]
    assert not check["ok"] and "saw 23.08" in check["detail"]


def test_a_device_the_audit_did_not_cover_fails_the_bound(tmp_path: Path) -> None:
    report = offline_report({"rep-a": 3.0, "rep-b": 5.2, "rep-c": 0.0})  # no rep-d
    assert not report["ok"]
    write_report(report, tmp_path)
    assert "not audited" in (tmp_path / "report.html").read_text()
