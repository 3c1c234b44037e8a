"""Offline periods from link events: pure arithmetic, no database.

A device is *online* while at least one of its channels is up and *offline* while
none is. Its state is *unknown* before its first link event and after the last
moment the server heard from it (``known_until``): the journal of that time has not
arrived yet. Times are server milliseconds (already corrected for clock skew).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Link:
    """One link event: at ``at_ms`` the channel went up or down."""

    at_ms: int
    channel: str
    up: bool


@dataclass(frozen=True, slots=True)
class Period:
    """A stretch of time in one state, clipped to the window; ``open`` if it was still
    going on when the server last heard from the device."""

    start_ms: int
    end_ms: int
    open: bool = False

    @property
    def ms(self) -> int:
        """How long it lasted."""
        return self.end_ms - self.start_ms


@dataclass(slots=True)
class Timeline:
    """Online, offline and unknown time in a window, and the offline periods."""

    online_ms: int = 0
    offline_ms: int = 0
    unknown_ms: int = 0
    offline: list[Period] = field(default_factory=list)


def timeline(
    before: Mapping[str, bool],
    links: Iterable[Link],
    start_ms: int,
    end_ms: int,
    known_until_ms: int,
) -> Timeline:
    """Split [start_ms, end_ms) into online, offline and unknown time.

    ``before`` is each channel's state as of ``start_ms`` (its last event before the
    window; empty if none); ``links`` are the events in the window, in time order.
    """
    result = Timeline()
    channels = dict(before)
    known = min(max(known_until_ms, start_ms), end_ms)
    cursor = start_ms
    for link in links:
        at = min(max(link.at_ms, start_ms), end_ms)
        _account(result, channels, cursor, at, known)
        cursor = at
        channels[link.channel] = link.up
    _account(result, channels, cursor, end_ms, known)
    if channels and not any(channels.values()):
        _close(result, known_until_ms)
    return result


def _account(
    result: Timeline, channels: Mapping[str, bool], start: int, end: int, known: int
) -> None:
    """Add [start, end) in the state ``channels`` give; past ``known`` it is unknown."""
    if end <= start:
        return
    certain_end = min(end, known)
    certain = max(certain_end - start, 0)
    result.unknown_ms += (end - start) - certain
    if not certain:
        return
    if not channels:
        result.unknown_ms += certain
    elif any(channels.values()):
        result.online_ms += certain
    else:
        result.offline_ms += certain
        _add_offline(result.offline, start, certain_end)


def _add_offline(periods: list[Period], start: int, end: int) -> None:
    """Append an offline stretch, merged with the previous one if they touch."""
    if periods and periods[-1].end_ms == start:
        periods[-1] = Period(periods[-1].start_ms, end)
    else:
        periods.append(Period(start, end))


def _close(result: Timeline, known: int) -> None:
    """Mark the last offline period open (the device is offline as far as the server
    knows) if it runs up to the last moment the server knows of."""
    if result.offline and result.offline[-1].end_ms == known:
        last = result.offline[-1]
        result.offline[-1] = Period(last.start_ms, last.end_ms, open=True)
