"""Run a scenario: server, proxies, device processes, faults on schedule, heal, drain, verify.

The runner owns every process and socket it starts and stops them all, whatever
happens. Time: the scenario is in simulated seconds; the runner waits
``time_scale`` real seconds per simulated one, and every device's retry policy is
scaled by the same factor (``RetryPolicy.scaled``). A server's Retry-After is real
time and is never scaled (the client honours it as is; so does the check here).

Ground truth is each device's ledger (op_ids appended after ``record()`` returned)
and its outbox, read with its key after the run; the server's side is its
database. Retry-After is checked from what the proxies saw on the wire, not from
what the client says it did.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client_sync import HttpChannel, SyncClient

from .job import DeviceJob, rep_command
from .procs import HOST, Enrolment, LiveServer, enrol_many, free_port, server_cli, server_process
from .proxy import FaultProxy, HttpEvent, ProxyLoop
from .report import build_report
from .scenario import DeviceGroup, DeviceSchedule, Scenario, build_schedule

#: Slack for a request that comes back right at the end of a Retry-After (clocks,
#: scheduling); a request earlier than this before the deadline is a violation.
RETRY_AFTER_TOLERANCE = 0.05

#: Seconds for any one device process to wind down after being told to drain.
EXIT_GRACE = 30.0


@dataclass
class RetryAfterWatch:
    """Per device, across its channels: each 429's deadline and requests that beat it."""

    windows: list[tuple[float, float]] = field(default_factory=list)  # (t, retry_after)
    violations: list[dict[str, Any]] = field(default_factory=list)
    http: list[tuple[float, str, str, int | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observer(self, channel: str) -> Any:
        """A proxy observer that files events under ``channel``."""

        def see(event: HttpEvent) -> None:
            with self.lock:
                self.http.append((event.t, channel, event.kind, event.status))
                if event.kind == "response":
                    if event.status == 429 and event.retry_after is not None:
                        self.windows.append((event.t, event.retry_after))
                    return
                for t, after in self.windows:
                    if event.t < t + after - RETRY_AFTER_TOLERANCE:
                        self.violations.append(
                            {"at": event.t, "channel": channel, "early_by": t + after - event.t}
                        )
                self.windows = [(t, a) for t, a in self.windows if event.t < t + a]

        return see

    def forget(self) -> None:
        """The app was killed: a new process does not know the old one's waits."""
        with self.lock:
            self.windows = []


@dataclass
class Device:
    """One simulated phone at run time."""

    name: str
    group: DeviceGroup
    schedule: DeviceSchedule
    enrolment: Enrolment
    key: bytes
    home: Path
    wifi: FaultProxy
    cellular: FaultProxy
    watch: RetryAfterWatch
    proc: subprocess.Popen[bytes] | None = None
    upgraded: bool = False
    lifecycle: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ledger(self) -> Path:
        return self.home / "ledger.txt"

    @property
    def events(self) -> Path:
        return self.home / "events.jsonl"

    def recorded(self) -> int:
        try:
            return len(self.ledger.read_text().split())
        except FileNotFoundError:
            return 0


class Runner:
    """One run of one scenario in ``out``; ``run()`` returns the report dict."""

    def __init__(
        self,
        scenario: Scenario,
        out: Path,
        *,
        database_url: str | None = None,
        log: Any = None,
    ) -> None:
        self.scenario = scenario
        self.schedule = build_schedule(scenario)
        self.out = out
        self.work = out / "work"
        self.database_url = database_url or f"sqlite:///{self.work / 'server.db'}"
        self.embedded = database_url is None
        self.port = free_port()
        self.flag = self.work / "heal.flag"
        self.devices: list[Device] = []
        self.server_events: list[dict[str, Any]] = []
        self._log = log or (lambda text: None)
        self._t0 = 0.0
        self._server_stack: ExitStack | None = None

    # -- the run ------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run the scenario end to end; return the report (also written to ``out``)."""
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        started = time.monotonic()
        server_cli("db", "upgrade", database_url=self.database_url)
        names = [d.name for d in self.schedule.devices]
        enrolments = enrol_many([f"sim {self.scenario.name} {n}" for n in names], self.database_url)
        with ProxyLoop() as loop, ExitStack() as stack:
            self._make_devices(loop, enrolments)
            stack.callback(self._server_down)
            stack.callback(self._kill_all)
            self._server_up()
            self._t0 = time.time()
            for device in self.devices:
                self._spawn(device)
            self._wait_started()
            heal_at = self._play()
            self._say("network healed; draining")
            self.flag.touch()
            drained_at = self._wait_for_devices(heal_at)
            self._server_down()
            proxies = {
                d.name: (d.wifi.counters.as_dict(), d.cellular.counters.as_dict())
                for d in self.devices
            }
        server = LiveServer(f"http://{HOST}:{self.port}", self.database_url)
        verdicts = [self._verify(d, server) for d in self.devices]
        return build_report(
            scenario=self.scenario,
            schedule=self.schedule,
            devices=verdicts,
            proxies=proxies,
            t0=self._t0,
            heal_at=heal_at - self._t0,
            drained_at=drained_at - self._t0,
            server_events=self.server_events,
            database=self._db_label(),
            wall_seconds=time.monotonic() - started,
            audited=self._audited(),
        )

    def _events(self) -> list[tuple[float, int, str, Any]]:
        """Every scheduled change as (simulated time, order, kind, argument), sorted."""
        duration = self.scenario.duration
        events: list[tuple[float, int, str, Any]] = []
        for n, device in enumerate(self.devices):
            for proxy, segs in (
                (device.wifi, device.schedule.wifi),
                (device.cellular, device.schedule.cellular),
            ):
                for seg in segs:
                    if seg.end is not None:  # the heal segment is applied at the end
                        events.append((seg.start, 0, "link", (proxy, seg.link)))
            for at, restart_after, after_recorded in device.schedule.crashes:
                events.append((at, 1, "kill", (n, after_recorded)))
                events.append((min(at + restart_after, duration), 2, "spawn", n))
            if device.schedule.upgrade_at is not None:
                events.append((device.schedule.upgrade_at, 1, "upgrade", n))
        for restart in self.schedule.server_restarts:
            events.append((restart.at, 1, "server_down", None))
            events.append((min(restart.at + restart.down_for, duration), 2, "server_up", None))
        events.sort(key=lambda e: (e[0], e[1]))
        return events

    def _play(self) -> float:
        """Apply every scheduled change at its time, then heal the network; return when."""
        scale = self.scenario.time_scale
        for at, _, kind, arg in self._events():
            self._sleep_until(self._t0 + at * scale)
            self._apply(kind, arg)
            self._check_devices()
        self._sleep_until(self._t0 + self.scenario.duration * scale)
        # Stamped before the links switch: what gets through from here on may be the
        # healed network, and respawning devices below takes a while.
        healed_at = time.time()
        for device in self.devices:
            device.wifi.set_link(device.schedule.wifi[-1].link)
            device.cellular.set_link(device.schedule.cellular[-1].link)
            if device.proc is None:
                self._spawn(device)  # a crash whose restart fell after the end
        if self._server_stack is None:
            self._server_up()
        return healed_at

    def _apply(self, kind: str, arg: Any) -> None:
        if kind == "link":
            proxy, link = arg
            proxy.set_link(link)
        elif kind == "kill":
            device = self.devices[arg[0]]
            self._wait_recorded(device, arg[1])
            self._kill(device, "crash (SIGKILL)")
        elif kind == "spawn":
            if self.devices[arg].proc is None:
                self._spawn(self.devices[arg])
        elif kind == "upgrade":
            device = self.devices[arg]
            self._kill(device, "upgrade: the old app is replaced")
            device.upgraded = True
            self._spawn(device)
        elif kind == "server_down":
            self._say("server stops")
            self._server_down()
        elif kind == "server_up":
            self._server_up()
            self._say("server is back")

    def _server_up(self) -> None:
        stack = ExitStack()
        stack.enter_context(self._server())
        self._server_stack = stack
        since = time.time() - self._t0 if self._t0 else 0.0
        self.server_events.append({"t": round(since, 3), "event": "up"})

    def _server_down(self) -> None:
        stack, self._server_stack = self._server_stack, None
        if stack is not None:
            stack.close()
            self.server_events.append({"t": round(time.time() - self._t0, 3), "event": "down"})

    # -- processes ----------------------------------------------------------------

    def _make_devices(self, loop: ProxyLoop, enrolments: list[Enrolment]) -> None:
        import random

        for sched, enrolment in zip(self.schedule.devices, enrolments, strict=True):
            group = next(g for g in self.scenario.groups if g.name == sched.group)
            watch = RetryAfterWatch()
            rng = random.Random(f"{self.scenario.seed}:{sched.name}:proxy")
            target = (HOST, self.port)
            wifi = loop.add(
                FaultProxy(f"{sched.name}/wifi", target, rng=rng, observer=watch.observer("wifi"))
            )
            cell = loop.add(
                FaultProxy(
                    f"{sched.name}/cellular", target, rng=rng, observer=watch.observer("cellular")
                )
            )
            wifi.set_link(sched.wifi[0].link)
            cell.set_link(sched.cellular[0].link)
            home = self.work / sched.name
            home.mkdir()
            self.devices.append(
                Device(sched.name, group, sched, enrolment, os.urandom(32), home, wifi, cell, watch)
            )

    @contextlib.contextmanager
    def _server(self) -> Iterator[LiveServer]:
        extra: list[str] = []
        sc = self.scenario
        for flag, value in (
            ("--rate-limit-device", sc.rate_limit_device),
            ("--rate-limit-total", sc.rate_limit_total),
            ("--rate-limit-window", sc.rate_limit_window),
        ):
            if value is not None:
                extra += [flag, value]
        with server_process(
            self.database_url, port=self.port, log=self.work / "server.log", extra_args=extra
        ) as server:
            yield server

    def _spawn(self, device: Device) -> None:
        sc = self.scenario
        version = device.group.protocol_version if not device.upgraded else None
        job = DeviceJob(
            db=str(device.home / "outbox.db"),
            key_hex=device.key.hex(),
            device_id=device.enrolment.device_id,
            token=device.enrolment.token,
            url=f"http://{HOST}:{device.wifi.port}",
            cellular_url=f"http://{HOST}:{device.cellular.port}",
            ledger=str(device.ledger),
            events=str(device.events),
            workload=device.group.workload,
            time_scale=sc.time_scale,
            http_timeout=max(2.0, 30 * sc.time_scale),
            protocol_version=version,
            sample_every=max(0.05, min(1.0, sc.duration * sc.time_scale / 200)),
            hold_until=str(self.flag),
            hold_timeout=sc.duration * sc.time_scale + 600,
            drain_timeout=sc.drain_timeout,
            seed=sc.seed,
        )
        log = (device.home / "rep.log").open("ab")
        device.proc = subprocess.Popen(
            rep_command(job, device.home / "job.json"), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        device.watch.forget()
        self._lifecycle(
            device,
            "start",
            version=device.group.protocol_version if not device.upgraded else "current",
            count=max(0, job.workload.entries - device.recorded()),
        )

    def _kill(self, device: Device, why: str) -> None:
        if device.proc is None:
            return
        if device.proc.poll() is None:
            device.proc.send_signal(signal.SIGKILL)
        device.proc.wait(10)
        device.proc = None
        self._lifecycle(device, "kill", why=why)

    def _kill_all(self) -> None:
        for device in self.devices:
            if device.proc is not None and device.proc.poll() is None:
                device.proc.send_signal(signal.SIGKILL)
                device.proc.wait(10)

    def _check_devices(self) -> None:
        for device in self.devices:
            if device.proc is not None and device.proc.poll() not in (None, 0):
                raise RuntimeError(
                    f"{device.name} exited with {device.proc.returncode}; "
                    f"see {device.home / 'rep.log'}"
                )

    def _wait_for_devices(self, heal_at: float) -> float:
        deadline = heal_at + self.scenario.drain_timeout + EXIT_GRACE
        for device in self.devices:
            assert device.proc is not None
            try:
                code = device.proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self._kill(device, "did not finish draining in time")
                continue
            if code != 0:
                raise RuntimeError(
                    f"{device.name} exited with {code}; see {device.home / 'rep.log'}"
                )
            self._lifecycle(device, "exit")
        return time.time()

    def _lifecycle(self, device: Device, event: str, **data: Any) -> None:
        device.lifecycle.append({"t": round(time.time() - self._t0, 3), "event": event, **data})

    # -- verdict ------------------------------------------------------------------

    def _verify(self, device: Device, server: LiveServer) -> dict[str, Any]:
        ledger = device.ledger.read_text().split() if device.ledger.exists() else []
        recorded = set(ledger)
        rows = server.ops(device.enrolment.device_id)
        on_server = [row.op_id for row in rows]
        seqs = [row.seq for row in rows]
        duplicated = (len(on_server) - len(set(on_server))) + (len(seqs) - len(set(seqs)))
        statuses = {row.op_id: row.status for row in rows}
        nowhere = HttpChannel("wifi", f"http://{HOST}:9", device.enrolment.token)
        with SyncClient(
            device.home / "outbox.db", device.key, device_id=device.enrolment.device_id,
            channels=[nowhere],
        ) as client:  # fmt: skip
            stats = client.stats()
            entries = []
            after = 0
            for _ in range(10_000):  # bounded paging
                page = client.entries(after_seq=after, limit=5000)
                if not page:
                    break
                entries.extend(page)
                after = page[-1].seq
        bad_tx = {e.tx_id for e in entries if e.record_id.startswith("bad-")}
        expected = {e.op_id for e in entries if e.tx_id in bad_tx}
        parked = {e.op_id for e in entries if e.state == "parked"}
        events = _read_events(device.events)
        return {
            "device": device.name,
            "group": device.group.name,
            "recorded": len(recorded),
            "in_outbox": len(entries),
            "applied": sum(statuses.get(op) in ("applied", "conflict") for op in recorded),
            "duplicated": duplicated,
            "lost": len(recorded - set(on_server)),
            "invalid_designed": sum(e.record_id.startswith("bad-") for e in entries),
            "parked_expected": len(expected),
            "parked": len(parked),
            "parked_mismatch": len(parked ^ expected),
            "pending": stats["pending"] + stats["in_flight"],
            "retry_after_violations": len(device.watch.violations),
            "violations": device.watch.violations[:20],
            "http": device.watch.http,
            "events": events,
            "lifecycle": device.lifecycle,
        }

    def _audited(self) -> dict[str, float | None]:
        """Each device's offline time (real s) by the server's audit; None: not audited.

        Not wired yet: the audit API (``GET /v1/admin/devices/<id>/audit``, issue 9)
        and admin credentials are not on this branch. The report shows the truth alone
        and says "not audited"; a scenario expecting ``max_offline_error_pct`` fails.
        """
        return {device.name: None for device in self.devices}

    # -- helpers ------------------------------------------------------------------

    def _wait_started(self, timeout: float = 60.0) -> None:
        """Start the clock once every device process is up (imports take a while)."""
        deadline = time.time() + timeout
        waiting = list(self.devices)
        while waiting and time.time() < deadline:
            self._check_devices()
            waiting = [d for d in waiting if '"ev": "start"' not in _text(d.events)]
            time.sleep(0.05)
        if waiting:
            raise RuntimeError(f"{waiting[0].name} did not start in {timeout} s")
        now = time.time()
        shift = now - self._t0
        self._t0 = now
        for device in self.devices:
            for item in device.lifecycle:
                item["t"] = round(item["t"] - shift, 3)
        for item in self.server_events:
            item["t"] = round(item["t"] - shift, 3)

    def _wait_recorded(self, device: Device, count: int) -> None:
        """Wait until ``device``'s ledger holds ``count`` entries (or the scenario ends)."""
        end = self._t0 + self.scenario.duration * self.scenario.time_scale
        while count and device.recorded() < count and time.time() < end:
            time.sleep(0.005)
            if device.proc is not None and device.proc.poll() is not None:
                return

    def _sleep_until(self, when: float) -> None:
        for _ in range(100_000):  # bounded; each step sleeps up to 0.5 s
            left = when - time.time()
            if left <= 0:
                return
            time.sleep(min(left, 0.5))
            self._check_devices()

    def _say(self, text: str) -> None:
        self._log(f"[{time.time() - self._t0:7.1f}s] {text}")

    def _db_label(self) -> str:
        if self.embedded:
            return "embedded SQLite"
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)


def run_scenario(
    scenario: Scenario, out: Path, *, database_url: str | None = None, log: Any = None
) -> dict[str, Any]:
    """Run ``scenario``; write ``out/report.json`` and ``out/report.html``; return the report."""
    from .report import write_report

    out.mkdir(parents=True, exist_ok=True)
    report = Runner(scenario, out, database_url=database_url, log=log).run()
    write_report(report, out)
    return report


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _read_events(path: Path) -> list[dict[str, Any]]:
    """The device's JSON-lines events; a line cut by a SIGKILL is skipped."""
    found: list[dict[str, Any]] = []
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            found.append(item)
    return found
