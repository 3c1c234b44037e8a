"""The verdict: a loss, a duplicate or a violation fails the run; the page says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulations.report import build_report, write_report
from simulations.scenario import build_schedule, load_scenario

T0 = 1_000_000.0


def device(name: str = "rep-1", **over: Any) -> dict[str, Any]:
    verdict: dict[str, Any] = {
        "device": name,
        "group": "rep",
        "recorded": 10,
        "in_outbox": 10,
        "applied": 9,
        "duplicated": 0,
        "lost": 0,
        "invalid_designed": 1,
        "parked_expected": 1,
        "parked": 1,
        "parked_mismatch": 0,
        "pending": 0,
        "retry_after_violations": 0,
        "violations": [],
        "http": [],
        "events": [
            {"t": T0 + 0.5, "ev": "sample", "ch": "wifi", "pending": 3},
            {"t": T0 + 1.0, "ev": "attempt", "ch": "wifi", "ok": False, "err": "LinkFailure"},
            {"t": T0 + 1.0, "ev": "sample", "ch": "cellular", "pending": 3},
            {"t": T0 + 2.0, "ev": "attempt", "ch": "cellular", "ok": True, "n": 3, "ms": 80.0},
            {"t": T0 + 2.0, "ev": "sample", "ch": "wifi", "pending": 0},
            {"t": T0 + 6.5, "ev": "drained", "seconds": 0.5, "pending": 0},
        ],
        "lifecycle": [{"t": 0.0, "event": "start"}, {"t": 7.0, "event": "exit"}],
    }
    verdict.update(over)
    return verdict


def report_for(*devices: dict[str, Any]) -> dict[str, Any]:
    scenario = load_scenario("captive-portal", short=True)
    schedule = build_schedule(scenario)
    counters = {
        "connections": 1,
        "bytes_up": 100,
        "bytes_down": 50,
        "requests": 1,
        "captive_answers": 2,
        "statuses": {"200": 1},
    }
    return build_report(
        scenario=scenario,
        schedule=schedule,
        devices=list(devices),
        proxies={d["device"]: (counters, counters) for d in devices},
        t0=T0,
        heal_at=6.0,
        drained_at=7.0,
        server_events=[{"t": 0.0, "event": "up"}],
        database="embedded SQLite",
        wall_seconds=8.0,
    )


def test_a_clean_run_passes_and_reports_what_qa_reads(tmp_path: Path) -> None:
    report = report_for(device(), device("rep-2"))
    assert report["ok"]
    assert (report["lost"], report["duplicated"], report["retry_after_violations"]) == (0, 0, 0)
    assert report["parked"] == report["parked_expected"] == 2
    assert report["drain_seconds"] == pytest.approx(0.5)
    row = report["devices"][0]
    assert row["channels"]["wifi"]["failures"] == 1
    assert row["channels"]["cellular"]["deliveries"] == 1
    assert row["cellular_seconds"] == pytest.approx(1.0)
    assert report["seed"] == 200 and report["time_scale"] == pytest.approx(0.02)
    write_report(report, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "PASS" in page and page.count("<svg") == 2
    assert "<script" not in page


@pytest.mark.parametrize(
    ("over", "check"),
    [
        ({"lost": 1}, "nothing lost"),
        ({"duplicated": 1}, "nothing duplicated"),
        ({"parked_mismatch": 1, "parked": 0}, "parked = designed invalid"),
        ({"pending": 2}, "nothing pending"),
        ({"retry_after_violations": 1}, "Retry-After honoured"),
    ],
)
def test_anything_wrong_fails_the_run(tmp_path: Path, over: dict[str, Any], check: str) -> None:
    report = report_for(device(), device("rep-2", **over))
    assert not report["ok"]
    assert [c["check"] for c in report["checks"] if not c["ok"]] == [check]
    write_report(report, tmp_path)
    assert "FAIL" in (tmp_path / "report.html").read_text()


def test_the_scenarios_own_expectations_are_checked() -> None:
    no_cellular = device(
        events=[e for e in device()["events"] if e.get("ch") != "cellular" or e["ev"] != "attempt"]
    )
    report = report_for(no_cellular)
    failed = [c["detail"] for c in report["checks"] if not c["ok"]]
    assert failed == ["min_cellular_deliveries = 1: saw 0"]
