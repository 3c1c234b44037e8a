"""Scenario files: built-ins parse, bad files get a clear error, a seed fixes the schedule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simulations.proxy import HttpEvent
from simulations.runner import RetryAfterWatch
from simulations.scenario import (
    ScenarioError,
    build_schedule,
    builtin_names,
    load_scenario,
)
from tests._child import run_python

BUILTIN = [
    "bulk-import",
    "captive-portal",
    "offline-audit",
    "old-client",
    "promo-surge",
    "subway-day",
    "three-customers-crash",
]

GOOD = """
name = "tiny"
seed = 5
duration = 600
time_scale = 0.01

[[devices]]
name = "rep"
count = 3
wifi = [{ at = 0, profile = "flapping-wifi" }, { at = 300, profile = "healthy" }]
cellular = "subway"
[devices.workload]
entries = 10
reject_share = 0.1

[[crashes]]
device = "random"
count = 2
at = 60
restart_after = 30

[short]
duration = 120
devices = { rep = { count = 1, wifi = "healthy" } }
crashes = []
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def test_every_builtin_scenario_parses_in_both_forms() -> None:
    assert builtin_names() == BUILTIN
    for name in BUILTIN:
        long, short = load_scenario(name), load_scenario(name, short=True)
        assert long.name == short.name == name
        assert short.short and not long.short
        assert short.duration * short.time_scale <= 30  # CI's short form stays short
        assert sum(g.count for g in long.groups) >= sum(g.count for g in short.groups)
    day = load_scenario("subway-day")
    assert sum(g.count for g in day.groups) == 20
    assert day.duration >= 4 * 3600
    assert any(
        w.entries == 100_000 for w in (g.workload for g in load_scenario("bulk-import").groups)
    )


def test_a_good_file_and_its_short_form(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    long = load_scenario(path)
    assert [g.device_names for g in long.groups] == [["rep-1", "rep-2", "rep-3"]]
    assert long.groups[0].wifi[1].profile == "healthy"
    assert long.groups[0].workload.reject_share == pytest.approx(0.1)
    short = load_scenario(path, short=True)
    assert short.duration == 120
    assert short.groups[0].count == 1
    assert [p.profile for p in short.groups[0].wifi] == ["healthy"]
    assert short.crashes == ()
    assert short.time_scale == long.time_scale  # not overridden: kept


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = ", "not valid TOML"),
        ('name = "x"\nduration = 10\n', "[[devices]] is required"),
        (GOOD.replace('"subway"', '"subwya"'), "unknown profile 'subwya'"),
        (GOOD.replace("count = 3", "count = 0"), "count must be a whole number"),
        (GOOD.replace("entries = 10", "entries = -1"), "entries must be"),
        (GOOD.replace("reject_share = 0.1", "reject_share = 2"), "reject_share must be within"),
        (GOOD.replace("time_scale = 0.01", "time_scale = 5"), "time_scale must be within"),
        (GOOD.replace("seed = 5", "seed = 5\ncolour = 1"), "unknown key(s) colour"),
        (GOOD.replace("at = 300", "at = 900"), "starts after the duration"),
        (GOOD.replace('device = "random"', 'device = "nobody"'), "no device 'nobody'"),
        (GOOD.replace("devices = { rep", "devices = { nope"), "no such device group"),
    ],
)
def test_a_bad_file_gets_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, short="[short]" in text and "nope" in text)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_the_command_line_reports_a_bad_file_without_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('"subway"', '"subwya"'))
    done = subprocess.run(
        [sys.executable, "-m", "simulations", "run", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "unknown profile 'subwya'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()


def test_the_same_seed_gives_the_same_schedule(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD))
    one, two = build_schedule(scenario), build_schedule(scenario)
    assert one.as_dict() == two.as_dict()
    other = build_schedule(scenario.with_seed(6))
    assert other.as_dict() != one.as_dict()
    # the schedule has real content: cycles of the profiles and two seeded crashes
    device = one.devices[0]
    assert len({s.link.label for s in device.cellular}) >= 3
    assert sum(len(d.crashes) for d in one.devices) == 2
    for d in one.devices:
        for channel in (d.wifi, d.cellular):
            assert channel[-1].end is None and channel[-1].link.label == "healthy"  # healed
            ends = [s.end for s in channel[:-1]]
            assert [s.start for s in channel[1:]] == ends  # no gaps, no overlaps


def test_a_builtin_schedule_is_the_same_in_a_fresh_interpreter() -> None:
    code = (
        "import json; from simulations.scenario import load_scenario, build_schedule; "
        "print(json.dumps(build_schedule(load_scenario('subway-day')).as_dict()))"
    )
    runs = [run_python(code).stdout for _ in range(2)]
    assert runs[0] == runs[1]
    assert '"no signal"' in runs[0]


def test_retry_after_watch_counts_a_request_that_comes_back_early() -> None:
    watch = RetryAfterWatch()
    see = watch.observer("wifi")
    see(HttpEvent(100.0, "request"))
    see(HttpEvent(100.1, "response", 429, 2.0))
    see(HttpEvent(101.0, "request"))  # 1.1 s early: a violation
    see(HttpEvent(102.2, "request"))  # after the deadline: fine
    see(HttpEvent(102.3, "response", 429, 1.0))
    watch.forget()  # the app was killed: the new process cannot know
    see(HttpEvent(102.4, "request"))
    assert len(watch.violations) == 1
    assert watch.violations[0]["early_by"] == pytest.approx(1.1)
