"""Network profiles: what a real link does over time, as segments of proxy toxics.

Times are simulated seconds (the runner scales them); latencies and bandwidths are
physical and stay real. Each profile draws its segment lengths from the rng it is
given, so one seed gives one timeline.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .proxy import Bandwidth, Latency, LimitData, Link, ResetPeer, Slicer, SlowClose, Timeout

__all__ = ["PROFILES", "Segment", "cut", "heal", "segments"]


@dataclass(frozen=True, slots=True)
class Segment:
    """The link is ``link`` from ``start`` to ``end`` (None: to the end of the run)."""

    start: float
    end: float | None
    link: Link

    @property
    def up(self) -> bool:
        """Whether a request can get through (not a stall, cut or portal)."""
        return self.link.label in _UP_LABELS

    def as_list(self) -> list[Any]:
        """[start, end, label] for the report."""
        return [self.start, self.end, self.link.label]


HEALTHY = Link("healthy", (Latency(10, 5, "upstream"), Latency(10, 5, "downstream")))
CELL = Link("cellular", (Latency(60, 30, "upstream"), Latency(60, 30, "downstream")))
THREE_G = (
    Latency(150, 100, "upstream"),
    Latency(150, 100, "downstream"),
    Bandwidth(32, "upstream"),
    Bandwidth(96, "downstream"),
    Slicer(1400, 400, 500, "upstream"),
)
LOSSY = Link("lossy", THREE_G)
STALL = Link("stall", (*THREE_G, Timeout(0, "upstream"), Timeout(0, "downstream")))
RESET = Link("reset", (ResetPeer(0, "upstream"),))
NO_SIGNAL = Link("no signal", (Timeout(0, "upstream"), Timeout(0, "downstream")))
CUT = Link("cut mid-answer", (LimitData(300, "downstream"), SlowClose(1000, "downstream")))
CAPTIVE = Link("captive portal", captive=True)
OFFLINE = Link("offline", (ResetPeer(0, "upstream"),))

_UP_LABELS = {"healthy", "cellular", "lossy"}

#: Label → colour in the report.
COLOURS = {
    "healthy": "#3a9b4f",
    "cellular": "#5b8def",
    "lossy": "#d9a400",
    "stall": "#e0702b",
    "reset": "#c23b3b",
    "no signal": "#7a1f1f",
    "cut mid-answer": "#b05fc9",
    "captive portal": "#ff5fa2",
    "offline": "#555555",
}


def _steady(link: Link) -> Callable[[float, float, random.Random], list[Segment]]:
    def make(start: float, end: float, rng: random.Random) -> list[Segment]:
        return [Segment(start, end, link)]

    return make


def _cycle(
    good: tuple[float, float, Link],
    bad: tuple[float, float, list[tuple[float, Link]]],
) -> Callable[[float, float, random.Random], list[Segment]]:
    """Alternate a good link for uniform(lo, hi) s with a bad one picked by weight."""

    def make(start: float, end: float, rng: random.Random) -> list[Segment]:
        out: list[Segment] = []
        t = start
        good_turn = True
        for _ in range(100_000):  # bounded: each step moves t by >= 1 s
            if t >= end:
                break
            if good_turn:
                length, link = rng.uniform(good[0], good[1]), good[2]
            else:
                length = rng.uniform(bad[0], bad[1])
                link = _pick(bad[2], rng)
            length = max(1.0, length)
            out.append(Segment(round(t, 3), round(min(end, t + length), 3), link))
            t += length
            good_turn = not good_turn
        return out

    return make


def _pick(choices: list[tuple[float, Link]], rng: random.Random) -> Link:
    roll = rng.uniform(0, sum(w for w, _ in choices))
    for weight, link in choices:
        roll -= weight
        if roll <= 0:
            return link
    return choices[-1][1]


#: name → (what it models, segment maker(start, end, rng)).
PROFILES: dict[str, tuple[str, Callable[[float, float, random.Random], list[Segment]]]] = {
    "healthy": ("a good link: ~10 ms each way", _steady(HEALTHY)),
    "cellular": ("a good cellular link: ~60 ms each way", _steady(CELL)),
    "lossy-3g": (
        "3G with loss: 150±100 ms, 32/96 KB/s, small segments; stalls (held data, as TCP "
        "retransmits) of 3-15 s and the odd reset between 20-60 s of slow service",
        _cycle((20, 60, LOSSY), (3, 15, [(0.75, STALL), (0.25, RESET)])),
    ),
    "subway": (
        "online 90-300 s between stations, then 60-240 s in a tunnel: no signal (the "
        "request hangs) or resets",
        _cycle((90, 300, CELL), (60, 240, [(0.5, NO_SIGNAL), (0.5, RESET)])),
    ),
    "flapping-wifi": (
        "hotel wifi up 20-90 s, then down 5-30 s: resets, answers cut mid-way with a slow "
        "close, or silence",
        _cycle((20, 90, HEALTHY), (5, 30, [(0.4, RESET), (0.4, CUT), (0.2, NO_SIGNAL)])),
    ),
    "captive-portal": (
        "the wifi answers every request itself with an HTML login page, status 200",
        _steady(CAPTIVE),
    ),
    "cellular-only": (
        "no wifi in range: every connection on this channel is refused (reset)",
        _steady(OFFLINE),
    ),
    "offline": ("no link at all: every connection is reset", _steady(OFFLINE)),
}


def segments(profile: str, start: float, end: float, rng: random.Random) -> list[Segment]:
    """The segments ``profile`` draws for [start, end)."""
    return PROFILES[profile][1](start, end, rng)


def cut(segs: list[Segment], offline: tuple[tuple[float, float], ...]) -> list[Segment]:
    """``segs`` with the ``offline`` intervals laid over them as ``offline`` segments."""
    if not offline:
        return segs
    out: list[Segment] = []
    for seg in segs:
        assert seg.end is not None, "cut() works on a drawn timeline, before the heal"
        t = seg.start
        for start, end in offline:
            if end <= t or start >= seg.end:
                continue
            if start > t:
                out.append(Segment(t, start, seg.link))
            out.append(Segment(max(t, start), min(end, seg.end), OFFLINE))
            t = min(end, seg.end)
        if t < seg.end:
            out.append(Segment(t, seg.end, seg.link))
    return out


def heal(at: float) -> Segment:
    """The healed network after the scenario's duration."""
    return Segment(at, None, HEALTHY)
