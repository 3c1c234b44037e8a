"""The verdict of a run: ``report.json`` for machines and one self-contained ``report.html``.

The HTML page has no script and fetches nothing: tables and inline SVG charts,
one timeline per device (link state per channel, send attempts, outbox depth,
crashes and restarts, the heal).
"""

from __future__ import annotations

import html
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .audit import offline_rows
from .profiles import COLOURS
from .scenario import EXPECT_KEYS, Scenario, Schedule

__all__ = ["build_report", "write_report"]


def build_report(
    *,
    scenario: Scenario,
    schedule: Schedule,
    devices: list[dict[str, Any]],
    proxies: dict[str, tuple[dict[str, Any], dict[str, Any]]],
    t0: float,
    heal_at: float,
    drained_at: float,
    server_events: list[dict[str, Any]],
    database: str,
    wall_seconds: float,
    audited: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """Aggregate per-device verdicts into the report dict (what report.json holds).

    ``audited`` is each device's offline time (real seconds) by the server's audit,
    None where there is none yet; the report puts it next to the schedule's truth.
    """
    rows = [_device_row(d, proxies[d["device"]], t0, heal_at) for d in devices]
    total = {
        key: sum(r[key] for r in rows)
        for key in (
            "recorded", "applied", "duplicated", "lost", "invalid_designed", "parked_expected",
            "parked", "parked_mismatch", "pending", "retry_after_violations", "http_429",
            "http_426", "http_5xx", "captive_answers", "crashes",
        )
    }  # fmt: skip
    for channel in ("wifi", "cellular"):
        for key in ("attempts", "failures", "deliveries", "bytes_up", "bytes_down"):
            total[f"{channel}_{key}"] = sum(r["channels"][channel][key] for r in rows)
    total["cellular_seconds"] = round(sum(r["cellular_seconds"] for r in rows), 3)
    drain = max((r["drain_seconds"] for r in rows if r["drain_seconds"] is not None), default=None)
    offline = offline_rows(schedule, scenario.time_scale, audited or {})
    checks = _checks(scenario, total, drain, offline)
    latency = _latency_by_group(devices)
    report: dict[str, Any] = {
        "scenario": scenario.name,
        "description": scenario.description,
        "source": scenario.source,
        "short": scenario.short,
        "seed": scenario.seed,
        "time_scale": scenario.time_scale,
        "time_note": (
            f"1 simulated second = {scenario.time_scale:g} real seconds; every retry wait of "
            "the client is scaled by the same factor; a server's Retry-After is real time "
            "and is never scaled"
        ),
        "duration_simulated": scenario.duration,
        "database": database,
        "ok": all(c["ok"] for c in checks),
        "lost": total["lost"],
        "duplicated": total["duplicated"],
        "parked_expected": total["parked_expected"],
        "parked": total["parked"],
        "retry_after_violations": total["retry_after_violations"],
        "drain_seconds": drain,
        "wall_seconds": round(wall_seconds, 2),
        "heal_at": round(heal_at, 3),
        "drained_at": round(drained_at, 3),
        "totals": total,
        "checks": checks,
        "batch_latency_ms": latency,
        "devices": rows,
        "server_events": server_events,
        "schedule": schedule.as_dict(),
        "offline_audit": offline,
        "timelines": {d["device"]: _timeline(d, t0) for d in devices},
    }
    return report


def write_report(report: dict[str, Any], out: Path) -> None:
    """Write ``out/report.json`` and ``out/report.html``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=False) + "\n")
    (out / "report.html").write_text(render_html(report))


# -- aggregation --------------------------------------------------------------------


def _device_row(
    d: dict[str, Any], proxies: tuple[dict[str, Any], dict[str, Any]], t0: float, heal_at: float
) -> dict[str, Any]:
    events = d["events"]
    attempts = [e for e in events if e.get("ev") == "attempt"]
    channels: dict[str, dict[str, Any]] = {}
    for channel, counters in zip(("wifi", "cellular"), proxies, strict=True):
        mine = [a for a in attempts if a.get("ch") == channel]
        channels[channel] = {
            "attempts": len(mine),
            "failures": sum(not a.get("ok") for a in mine),
            "deliveries": sum(bool(a.get("ok")) for a in mine),
            "errors": dict(Counter(str(a.get("err")) for a in mine if not a.get("ok"))),
            "bytes_up": counters["bytes_up"],
            "bytes_down": counters["bytes_down"],
            "connections": counters["connections"],
            "statuses": counters["statuses"],
        }
    statuses: Counter[int] = Counter()
    for counters in proxies:
        for code, n in counters["statuses"].items():
            statuses[int(code)] += n
    drained = [e for e in events if e.get("ev") == "drained"]
    drain_seconds = round(drained[-1]["t"] - t0 - heal_at, 3) if drained else None
    ok_ms = sorted(float(a["ms"]) for a in attempts if a.get("ok") and "ms" in a)
    return {
        "device": d["device"],
        "group": d["group"],
        "recorded": d["recorded"],
        "applied": d["applied"],
        "duplicated": d["duplicated"],
        "lost": d["lost"],
        "invalid_designed": d["invalid_designed"],
        "parked_expected": d["parked_expected"],
        "parked": d["parked"],
        "parked_mismatch": d["parked_mismatch"],
        "pending": d["pending"],
        "drain_seconds": drain_seconds,
        "retry_after_violations": d["retry_after_violations"],
        "violations": d["violations"],
        "http_429": statuses[429],
        "http_426": statuses[426],
        "http_5xx": sum(n for code, n in statuses.items() if 500 <= code <= 599),
        "captive_answers": sum(c["captive_answers"] for c in proxies),
        "crashes": sum(1 for x in d["lifecycle"] if x["event"] == "kill"),
        "cellular_seconds": _cellular_seconds(events),
        "batch_latency_ms": {"p50": _pct(ok_ms, 50), "p99": _pct(ok_ms, 99), "n": len(ok_ms)},
        "channels": channels,
    }


def _cellular_seconds(events: list[dict[str, Any]]) -> float:
    """Time the client's current channel was cellular, from its samples."""
    samples = [e for e in events if e.get("ev") == "sample"]
    total = 0.0
    for a, b in itertools.pairwise(samples):
        gap = b["t"] - a["t"]
        if a.get("ch") == "cellular" and 0 < gap < 5.0:  # a longer gap is a crash
            total += gap
    return round(total, 3)


def _latency_by_group(devices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_group: dict[str, list[float]] = {}
    for d in devices:
        ms = [
            float(e["ms"])
            for e in d["events"]
            if e.get("ev") == "attempt" and e.get("ok") and "ms" in e
        ]
        by_group.setdefault(d["group"], []).extend(ms)
    return {
        g: {"p50": _pct(sorted(v), 50), "p99": _pct(sorted(v), 99), "n": len(v)}
        for g, v in by_group.items()
    }


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    rank = max(0, math.ceil(p / 100 * len(values)) - 1)
    return round(values[rank], 1)


def _checks(
    scenario: Scenario,
    total: dict[str, Any],
    drain: float | None,
    offline: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    checks = [
        _check("nothing lost", total["lost"] == 0, f"lost = {total['lost']}"),
        _check(
            "nothing duplicated", total["duplicated"] == 0, f"duplicated = {total['duplicated']}"
        ),
        _check(
            "parked = designed invalid",
            total["parked_mismatch"] == 0,
            f"parked {total['parked']}, expected {total['parked_expected']} (the invalid "
            f"entries and the rest of their transactions), differing {total['parked_mismatch']}",
        ),
        _check("nothing pending", total["pending"] == 0, f"pending = {total['pending']}"),
        _check(
            "Retry-After honoured",
            total["retry_after_violations"] == 0,
            f"violations = {total['retry_after_violations']}",
        ),
        _check("drained", drain is not None, f"drain took {drain} s"),
    ]
    seen = {
        "min_429": total["http_429"],
        "max_5xx": total["http_5xx"],
        "min_upgrade_required": total["http_426"],
        "min_captive_answers": total["captive_answers"],
        "min_cellular_deliveries": total["cellular_deliveries"],
    }
    errors = [row["error_pct"] for row in offline]
    # Worst device; a device with no audit fails the bound (inf), never passes it.
    seen["max_offline_error_pct"] = max((math.inf if e is None else e for e in errors), default=0)
    for key, bound in scenario.expect.items():
        value = seen[key]
        ok = value <= bound if key.startswith("max_") else value >= bound
        checks.append(_check(EXPECT_KEYS[key], ok, f"{key} = {bound}: saw {value}"))
    return checks


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"check": name, "ok": bool(ok), "detail": detail}


def _timeline(d: dict[str, Any], t0: float) -> dict[str, Any]:
    """What the charts need, in seconds since the start."""
    events = d["events"]
    return {
        "depth": [
            [round(e["t"] - t0, 3), e.get("pending", 0)] for e in events if e.get("ev") == "sample"
        ],
        "attempts": [
            [round(e["t"] - t0, 3), e.get("ch"), bool(e.get("ok")), e.get("n", 0), e.get("err")]
            for e in events
            if e.get("ev") == "attempt"
        ],
        "lifecycle": d["lifecycle"],
    }


# -- HTML ---------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.verdict{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:600}
.pass{background:#2e7d32}.fail{background:#c62828}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.bad{background:#fde0e0;font-weight:600}.muted{color:#666}.legend span{display:inline-block;
margin-right:14px}.sw{display:inline-block;width:12px;height:12px;vertical-align:-1px;
margin-right:4px;border-radius:2px}.dev{margin:18px 0 4px;font-weight:600}
.kv td{text-align:left}
"""


def render_html(r: dict[str, Any]) -> str:
    """The whole report page."""
    t = r["totals"]
    verdict = "PASS" if r["ok"] else "FAIL"
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>fieldsync simulation: {_e(r['scenario'])} ({verdict})</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(r['scenario'])}{' (short form)' if r['short'] else ''} "
        f"<span class='verdict {'pass' if r['ok'] else 'fail'}'>{verdict}</span></h1>",
        f"<p class=muted>{_e(r['description'])}</p>",
        "<table class=kv>",
        _kv("seed", r["seed"]),
        _kv("time scale", r["time_note"]),
        _kv("simulated duration", f"{r['duration_simulated']:g} s"),
        _kv("server database", r["database"]),
        _kv("network healed at", f"{r['heal_at']:.1f} s (real)"),
        _kv("drain time", f"{r['drain_seconds']} s after the heal (slowest device)"),
        _kv("run time", f"{r['wall_seconds']:.1f} s"),
        _kv("scenario", r["source"]),
        "</table>",
        "<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>detail</th></tr>",
    ]
    for c in r["checks"]:
        cls = "" if c["ok"] else " class=bad"
        parts.append(
            f"<tr{cls}><td>{_e(c['check'])}</td><td>{'ok' if c['ok'] else 'FAILED'}</td>"
            f"<td style='text-align:left'>{_e(c['detail'])}</td></tr>"
        )
    parts.append("</table>")
    parts.append("<h2>Totals</h2>")
    parts.append(_totals_table(t))
    parts.append("<h2>Per device</h2>")
    parts.append(_device_table(r["devices"]))
    if any(row["offline_truth_s"] or row["offline_audited_s"] for row in r["offline_audit"]):
        parts.append("<h2>Offline time: the schedule's truth and the server's audit</h2>")
        parts.append(_offline_table(r["offline_audit"], r["time_scale"]))
    if r["batch_latency_ms"]:
        parts.append("<h2>Batch latency (successful sends, ms)</h2><table>")
        parts.append("<tr><th>group</th><th>p50</th><th>p99</th><th>batches</th></tr>")
        for g, v in r["batch_latency_ms"].items():
            parts.append(
                f"<tr><td>{_e(g)}</td><td>{v['p50']}</td><td>{v['p99']}</td><td>{v['n']}</td></tr>"
            )
        parts.append("</table>")
    parts.append("<h2>Timelines</h2>")
    parts.append(_legend())
    end = max(r["drained_at"], r["heal_at"]) + 0.5
    for row in r["devices"]:
        name = row["device"]
        parts.append(
            f"<div class=dev>{_e(name)} <span class=muted>({_e(row['group'])})</span></div>"
        )
        sched = next(d for d in r["schedule"]["devices"] if d["name"] == name)
        parts.append(_svg(r, sched, r["timelines"][name], end))
    parts.append("</body></html>")
    return "\n".join(parts)


def _kv(key: str, value: Any) -> str:
    return f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _totals_table(t: dict[str, Any]) -> str:
    keys = [
        ("recorded", "recorded"), ("applied", "applied on the server"),
        ("duplicated", "duplicated (must be 0)"), ("lost", "lost (must be 0)"),
        ("invalid_designed", "designed invalid"), ("parked_expected", "parked expected"),
        ("parked", "parked"), ("pending", "still pending"),
        ("retry_after_violations", "Retry-After violations (must be 0)"),
        ("http_429", "429 answers"), ("http_426", "426 upgrade_required answers"),
        ("http_5xx", "5xx answers"), ("captive_answers", "captive-portal answers"),
        ("crashes", "app kills"), ("cellular_seconds", "seconds on cellular"),
    ]  # fmt: skip
    bad = {"duplicated", "lost", "retry_after_violations", "pending"}
    rows = ["<table><tr><th>measure</th><th>value</th></tr>"]
    for key, label in keys:
        cls = " class=bad" if key in bad and t[key] else ""
        rows.append(f"<tr{cls}><td>{_e(label)}</td><td>{t[key]}</td></tr>")
    rows.append("</table><table><tr><th>channel</th><th>attempts</th><th>failures</th>")
    rows.append("<th>deliveries</th><th>bytes up</th><th>bytes down</th></tr>")
    for ch in ("wifi", "cellular"):
        rows.append(
            f"<tr><td>{ch}</td><td>{t[ch + '_attempts']}</td><td>{t[ch + '_failures']}</td>"
            f"<td>{t[ch + '_deliveries']}</td><td>{t[ch + '_bytes_up']}</td>"
            f"<td>{t[ch + '_bytes_down']}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _device_table(devices: list[dict[str, Any]]) -> str:
    heads = [
        "device", "recorded", "applied", "dup", "lost", "parked / expected", "pending",
        "drain s", "RA viol.", "wifi att/fail", "cell att/fail", "wifi KB", "cell KB",
        "on cell s", "kills", "p50 ms", "p99 ms",
    ]  # fmt: skip
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>"]
    for d in devices:
        w, c = d["channels"]["wifi"], d["channels"]["cellular"]
        cells = [
            d["device"], d["recorded"], d["applied"], d["duplicated"], d["lost"],
            f"{d['parked']} / {d['parked_expected']}", d["pending"], d["drain_seconds"],
            d["retry_after_violations"], f"{w['attempts']}/{w['failures']}",
            f"{c['attempts']}/{c['failures']}",
            round((w["bytes_up"] + w["bytes_down"]) / 1024, 1),
            round((c["bytes_up"] + c["bytes_down"]) / 1024, 1),
            d["cellular_seconds"], d["crashes"], d["batch_latency_ms"]["p50"],
            d["batch_latency_ms"]["p99"],
        ]  # fmt: skip
        bad = d["duplicated"] or d["lost"] or d["parked_mismatch"] or d["retry_after_violations"]
        cls = " class=bad" if bad else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{_e(x)}</td>" for x in cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _offline_table(rows: list[dict[str, Any]], scale: float) -> str:
    heads = [
        "device", "truth (simulated s)", "truth (real s)", "audited (real s)",
        "audited (simulated s)", "error %", "offline periods (simulated s)",
    ]  # fmt: skip
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>"]
    for row in rows:
        audited = row["offline_audited_real_s"]
        periods = ", ".join(f"{a:g}-{b:g}" for a, b in row["periods"]) or "none"
        cells = [
            row["device"], row["offline_truth_s"], row["offline_truth_real_s"],
            "not audited" if audited is None else audited,
            "" if audited is None else row["offline_audited_s"],
            "" if row["error_pct"] is None else row["error_pct"], periods,
        ]  # fmt: skip
        out.append("<tr>" + "".join(f"<td>{_e(x)}</td>" for x in cells) + "</tr>")
    out.append(
        f"</table><p class=muted>Truth: no channel up, from the schedule; 1 simulated "
        f"second = {scale:g} real seconds. Audited: the server's offline audit of the "
        "device's journal.</p>"
    )
    return "".join(out)


def _legend() -> str:
    items = [
        f"<span><i class=sw style='background:{c}'></i>{_e(k)}</span>" for k, c in COLOURS.items()
    ]
    items.append(
        "<span>● delivered batch &nbsp; ✕ failed attempt &nbsp; blue line: outbox depth"
        " &nbsp; red dashed: app killed &nbsp; green dashed: app started &nbsp; "
        "grey band: server down &nbsp; "
        "black: network healed</span>"
    )
    return f"<p class=legend>{''.join(items)}</p>"


_W, _LEFT, _RIGHT = 1100, 80, 20


def _svg(r: dict[str, Any], sched: dict[str, Any], tl: dict[str, Any], end: float) -> str:
    scale = r["time_scale"]
    width = _W - _LEFT - _RIGHT
    h_bar, h_depth = 16, 60
    y_wifi, y_cell, y_depth = 6, 28, 52
    height = y_depth + h_depth + 20

    def x(t: float) -> float:
        return _LEFT + max(0.0, min(t, end)) / end * width

    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{height}' "
        f"viewBox='0 0 {_W} {height}' font-size='11' font-family='sans-serif'>"
    ]
    for label, y, segs in (
        ("wifi", y_wifi, sched["wifi"]),
        ("cellular", y_cell, sched["cellular"]),
    ):
        out.append(f"<text x='4' y='{y + 12}'>{label}</text>")
        for start, stop, name in segs:
            a = start * scale
            b = end if stop is None else stop * scale
            if stop is None:
                a = r["heal_at"]
            colour = COLOURS.get(name, "#999")
            out.append(
                f"<rect x='{x(a):.1f}' y='{y}' width='{max(0.5, x(b) - x(a)):.1f}' "
                f"height='{h_bar}' fill='{colour}'>"
                f"<title>{_e(name)}: {a:.1f}-{b:.1f} s</title></rect>"
            )
        for t, ch, ok, n, err in tl["attempts"]:
            if ch != label:
                continue
            cx, cy = x(t), y + h_bar / 2
            if ok:
                out.append(
                    f"<circle cx='{cx:.1f}' cy='{cy}' r='3' fill='#fff' stroke='#000'>"
                    f"<title>{t:.2f} s: delivered {n}</title></circle>"
                )
            else:
                out.append(
                    f"<text x='{cx - 3:.1f}' y='{cy + 4}' fill='#000'>✕<title>{t:.2f} s: "
                    f"{_e(err)}</title></text>"
                )
    depth = tl["depth"]
    top = max([1] + [p for _, p in depth])
    out.append(f"<text x='4' y='{y_depth + 12}'>outbox</text>")
    out.append(f"<text x='4' y='{y_depth + 26}' fill='#666'>max {top}</text>")
    out.append(
        f"<rect x='{_LEFT}' y='{y_depth}' width='{width}' height='{h_depth}' "
        "fill='#fafafa' stroke='#ddd'/>"
    )
    for run in _runs(depth):  # one line per process life: no line across a dead app
        pts = " ".join(
            f"{x(t):.1f},{y_depth + h_depth - p / top * (h_depth - 4):.1f}" for t, p in run
        )
        out.append(f"<polyline points='{pts}' fill='none' stroke='#1f5fbf' stroke-width='1.5'/>")
    for item in tl["lifecycle"]:
        if item["event"] not in ("kill", "start"):
            continue
        colour = "#c62828" if item["event"] == "kill" else "#2e7d32"
        xi = x(item["t"])
        out.append(
            f"<line x1='{xi:.1f}' x2='{xi:.1f}' y1='2' y2='{y_depth + h_depth}' stroke='{colour}' "
            f"stroke-dasharray='3,2'><title>{_e(item)}</title></line>"
        )
    out.extend(_server_down_bands(r["server_events"], x, y_depth + h_depth - 2))
    xh = x(r["heal_at"])
    out.append(f"<line x1='{xh:.1f}' x2='{xh:.1f}' y1='2' y2='{y_depth + h_depth}' stroke='#000'/>")
    for tick in _ticks(end):
        xt = x(tick)
        out.append(
            f"<text x='{xt:.1f}' y='{height - 4}' text-anchor='middle' fill='#666'>{tick:g}s</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _runs(points: list[list[float]]) -> list[list[list[float]]]:
    """Split samples where they pause for much longer than usual (the app was dead)."""
    if len(points) < 2:
        return [points] if points else []
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(points))
    limit = max(0.5, 5 * gaps[len(gaps) // 2])
    runs = [[points[0]]]
    for a, b in itertools.pairwise(points):
        if b[0] - a[0] > limit:
            runs.append([])
        runs[-1].append(b)
    return runs


def _server_down_bands(
    events: list[dict[str, Any]], x: Callable[[float], float], height: float
) -> list[str]:
    out: list[str] = []
    down_at: float | None = None
    for item in events:
        if item["event"] == "down":
            down_at = item["t"]
        elif item["event"] == "up" and down_at is not None:
            out.append(
                f"<rect x='{x(down_at):.1f}' y='2' width='{x(item['t']) - x(down_at):.1f}' "
                f"height='{height}' fill='#000' fill-opacity='0.18'>"
                f"<title>server down {down_at:.1f}-{item['t']:.1f} s</title></rect>"
            )
            down_at = None
    return out


def _ticks(end: float) -> list[float]:
    step = 10 ** math.floor(math.log10(max(end, 1e-3) / 5))
    for mult in (1, 2, 5, 10):
        if end / (step * mult) <= 10:
            step *= mult
            break
    return [round(i * step, 6) for i in range(int(end / step) + 1)]
