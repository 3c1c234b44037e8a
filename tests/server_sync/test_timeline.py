"""The offline arithmetic on its own: channels, window edges, unknown time, open periods."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server_sync.timeline import Link, Period, timeline

M = 60_000  # one minute in ms


def test_offline_means_no_channel_up() -> None:
    links = [
        Link(0, "wifi", True),
        Link(10 * M, "cellular", True),
        Link(20 * M, "wifi", False),  # cellular still up: online
        Link(30 * M, "cellular", False),  # nothing up: offline
        Link(45 * M, "wifi", True),
    ]
    line = timeline({}, links, 0, 60 * M, known_until_ms=60 * M)
    assert (line.online_ms, line.offline_ms, line.unknown_ms) == (45 * M, 15 * M, 0)
    assert line.offline == [Period(30 * M, 45 * M)]


def test_periods_are_clipped_at_both_window_edges() -> None:
    links = [Link(0, "wifi", False), Link(30 * M, "wifi", True), Link(50 * M, "wifi", False)]
    # The window starts in the middle of the first offline period (state from before).
    line = timeline({"wifi": False}, links[1:], 10 * M, 60 * M, known_until_ms=90 * M)
    assert line.offline == [Period(10 * M, 30 * M), Period(50 * M, 60 * M)]
    assert (line.online_ms, line.offline_ms, line.unknown_ms) == (20 * M, 30 * M, 0)


def test_before_the_first_event_and_after_the_last_report_is_unknown() -> None:
    links = [Link(10 * M, "wifi", True), Link(20 * M, "wifi", False)]
    line = timeline({}, links, 0, 60 * M, known_until_ms=40 * M)
    assert (line.unknown_ms, line.online_ms, line.offline_ms) == (30 * M, 10 * M, 20 * M)
    assert line.offline == [Period(20 * M, 40 * M, open=True)]  # still offline, as far as known


def test_a_device_never_heard_from_is_all_unknown() -> None:
    line = timeline({"wifi": True}, [], 0, 60 * M, known_until_ms=0)
    assert (line.unknown_ms, line.online_ms, line.offline_ms) == (60 * M, 0, 0)


def test_back_online_at_the_last_report_closes_the_period() -> None:
    links = [Link(10 * M, "wifi", False), Link(40 * M, "wifi", True)]
    line = timeline({"wifi": True}, links, 0, 60 * M, known_until_ms=40 * M)
    assert line.offline == [Period(10 * M, 40 * M, open=False)]


def test_repeated_down_events_make_one_period() -> None:
    links = [Link(10 * M, "wifi", False), Link(20 * M, "wifi", False), Link(30 * M, "os", False)]
    line = timeline({"wifi": True}, links, 0, 40 * M, known_until_ms=40 * M)
    assert line.offline == [Period(10 * M, 40 * M, open=True)]


_links = st.lists(
    st.builds(Link, st.integers(0, 100), st.sampled_from(["wifi", "cellular"]), st.booleans()),
    max_size=12,
).map(lambda links: sorted(links, key=lambda link: link.at_ms))


@settings(max_examples=400, derandomize=True)
@given(
    st.dictionaries(st.sampled_from(["wifi", "cellular"]), st.booleans()),
    _links,
    st.integers(0, 50),
    st.integers(0, 60),
    st.integers(0, 120),
)
def test_the_window_is_split_exactly_and_periods_stay_inside_it(
    before: dict[str, bool], links: list[Link], start: int, length: int, known: int
) -> None:
    end = start + length
    inside = [link for link in links if start <= link.at_ms < end]
    line = timeline(before, inside, start, end, known_until_ms=known)
    assert line.online_ms + line.offline_ms + line.unknown_ms == length
    assert sum(p.ms for p in line.offline) == line.offline_ms
    for period in line.offline:
        assert start <= period.start_ms < period.end_ms <= min(end, max(known, start))
    for first, second in zip(line.offline, line.offline[1:], strict=False):
        assert first.end_ms < second.start_ms  # merged when touching
