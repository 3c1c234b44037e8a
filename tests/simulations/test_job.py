"""A device process gets its job as data: the file the runner writes is the job rep reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulations import scenario
from simulations.job import DeviceJob, Workload, read_job, rep_command, write_job

JOB = DeviceJob(
    db="/tmp/x/outbox.db",
    key_hex="00" * 32,
    device_id="dev-1",
    token="t",
    url="http://127.0.0.1:9",
    ledger="/tmp/x/ledger.txt",
    workload=Workload(entries=7, entries_per_minute=60.0, reject_share=0.5, tx_max=2),
    cellular_url="http://127.0.0.1:10",
    time_scale=0.1,
    protocol_version="1.0",
)


def test_a_job_reads_back_as_it_was_written(tmp_path: Path) -> None:
    assert read_job(write_job(JOB, tmp_path / "job.json")) == JOB


@pytest.mark.parametrize("name", scenario.builtin_names())
def test_every_scenario_workload_is_the_job_workload(name: str) -> None:
    loaded = scenario.load_scenario(name, short=True)
    assert all(type(g.workload) is Workload for g in loaded.groups)


@pytest.mark.parametrize(
    "change",
    [
        lambda raw: raw.pop("workload"),
        lambda raw: raw.update(extra=1),
        lambda raw: raw["workload"].update(count=3),
        lambda raw: raw.pop("db"),
    ],
)
def test_a_file_that_is_not_a_job_is_refused_by_name(tmp_path: Path, change: object) -> None:
    raw = json.loads(write_job(JOB, tmp_path / "job.json").read_text())
    change(raw)  # type: ignore[operator]
    (tmp_path / "job.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"job\.json"):
        read_job(tmp_path / "job.json")


def test_the_device_process_refuses_a_bad_job_file_clearly(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text('{"db": "x"}')
    done = subprocess.run(
        [sys.executable, "-m", "simulations.rep", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "not a device job" in done.stderr


def test_the_command_line_carries_only_the_job_file(tmp_path: Path) -> None:
    cmd = rep_command(JOB, tmp_path / "job.json")
    assert cmd == [sys.executable, "-m", "simulations.rep", str(tmp_path / "job.json")]
    assert read_job(tmp_path / "job.json") == JOB
