"""The retry promise on a recorded sleep: 3 s, 30 s, switch channel, jittered backoff."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from client_sync import RetryPolicy, SyncClient
from client_sync._channels import ChannelSet
from client_sync._retry import Backoff
from client_sync.errors import AuthRejected, LinkFailure, ServerBusy
from tests._doubles import Offline
from tests.client_sync.conftest import Link

MakeClient = Callable[..., SyncClient]


def down() -> LinkFailure:
    return LinkFailure("connect refused")


def busy(retry_after: float | None = None) -> ServerBusy:
    return ServerBusy("503", retry_after=retry_after, status=503)


def test_first_failures_wait_3_then_30_then_the_next_attempt_goes_out_on_cellular(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    wifi = link("wifi", script=[down(), down(), down()])
    cellular = link("cellular", metered=True)
    client = make_client([wifi, cellular])
    op = client.record("customers", "c1", {"name": "A"})
    report = client.sync_now()
    assert sleeps == [3.0, 30.0]  # no wait before the first try on a fresh channel
    assert (len(wifi.batches), len(cellular.batches)) == (3, 1)
    assert list(cellular.batches[0].op_ids) == [op]
    assert (report.applied, report.remaining, report.last_error) == (1, 0, None)
    assert client.status().channel == "cellular"  # it stays on the channel that worked


def test_after_switching_waits_grow_with_jitter_and_never_pass_the_cap(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    wifi = link("wifi", forever=down())
    cellular = link("cellular", metered=True, forever=down())
    client = make_client([wifi, cellular], retry=RetryPolicy(max_attempts=20))
    client.record("customers", "c1", {"name": "A"})
    report = client.sync_now(timeout=None)
    assert isinstance(report.last_error, LinkFailure)
    assert report.remaining == 1 and client.stats()["pending"] == 1
    # Every 3rd consecutive link failure switches (wifi, cellular, wifi, ...) at once.
    assert [len(wifi.batches), len(cellular.batches)] == [11, 9]
    assert sleeps[:2] == [3.0, 30.0]
    backoff = sleeps[2:]
    assert len(backoff) == 19 - 6 - 2  # 19 gaps between 20 tries; a switch does not wait
    assert all(30.0 <= w <= 300.0 for w in backoff)
    assert len(set(backoff)) == len(backoff)  # jittered, not a fixed ladder
    assert max(backoff) > 200  # it does grow towards the cap


def test_without_jitter_the_backoff_is_exact_and_capped() -> None:
    policy = RetryPolicy(jitter=False)
    backoff = Backoff(policy, ChannelSet([Offline("only")]), random.Random(0))
    waits = [backoff.failed(down()) for _ in range(7)]
    assert waits == [3.0, 30.0, 90.0, 270.0, 300.0, 300.0, 300.0]  # one channel: no switch


def test_jitter_is_reproducible_with_a_seeded_random() -> None:
    def run(seed: int) -> list[float]:
        channels = ChannelSet([Offline("only")])
        backoff = Backoff(RetryPolicy(), channels, random.Random(seed))
        return [backoff.failed(busy()) for _ in range(10)]

    assert run(7) == run(7) != run(8)


def test_retry_after_is_honoured_even_above_the_schedule(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    wifi = link("wifi", script=[busy(120), busy(1), busy(7200)])
    client = make_client([wifi])
    client.record("customers", "c1", {"name": "A"})
    client.sync_now(timeout=None)
    assert sleeps[0] == 120.0  # never shorter than Retry-After
    assert sleeps[1] == 30.0  # a short Retry-After does not shorten the schedule
    assert sleeps[2] == 3600.0  # an absurd one is held to max_retry_after


def test_a_retry_after_outlives_the_drain_pass_so_sync_now_does_not_come_back_early(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    wifi = link("wifi", script=[busy(120)])
    client = make_client([wifi], retry=RetryPolicy(max_attempts=1))
    client.record("customers", "c1", {"name": "A"})
    assert isinstance(client.sync_now(timeout=None).last_error, ServerBusy)
    assert (sleeps, len(wifi.batches)) == ([], 1)  # the pass ended on the 429
    report = client.sync_now(timeout=None)  # e.g. the app's "sync now" button, a second later
    assert len(sleeps) == 1 and 119 < sleeps[0] <= 120  # waited out the Retry-After first
    assert (report.applied, len(wifi.batches)) == (1, 2)
    client.record("customers", "c2", {"name": "B"})
    client.sync_now()
    assert len(sleeps) == 1  # a success clears it


def test_server_busy_never_switches_channel(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    wifi = link("wifi", script=[busy(), busy(), busy(), busy(), busy()])
    cellular = link("cellular", metered=True)
    client = make_client([wifi, cellular])
    client.record("customers", "c1", {"name": "A"})
    assert client.sync_now(timeout=None).applied == 1
    assert cellular.batches == []  # no cellular data burnt on a busy server
    assert len(wifi.batches) == 6
    assert sleeps[:2] == [3.0, 30.0] and len(sleeps) == 5


def test_a_busy_answer_proves_the_link_and_resets_the_switch_count(
    make_client: MakeClient, link: Link
) -> None:
    wifi = link("wifi", script=[down(), down(), busy(), down(), down()])
    cellular = link("cellular", metered=True)
    client = make_client([wifi, cellular])
    client.record("customers", "c1", {"name": "A"})
    client.sync_now(timeout=None)
    assert (len(wifi.batches), len(cellular.batches)) == (6, 0)


def test_the_working_fallback_keeps_the_next_batches_until_prefer_again_after(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    wifi = link("wifi", forever=down())
    cellular = link("cellular", metered=True)
    client = make_client([wifi, cellular])
    for i in range(3):  # one batch per pass: a dead wifi is paid for once, not per batch
        client.record("customers", f"c{i}", {"name": "A"})
        assert client.sync_now().applied == 1
    assert sleeps == [3.0, 30.0]
    assert (len(wifi.batches), len(cellular.batches)) == (3, 3)


def test_after_prefer_again_after_a_success_hands_back_to_the_preferred_channel(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    wifi = link("wifi", script=[down(), down(), down()])
    cellular = link("cellular", metered=True)
    client = make_client([wifi, cellular], retry=RetryPolicy(prefer_again_after=0))
    client.record("customers", "c1", {"name": "A"})
    client.sync_now()
    wifi.script = [down()]
    client.record("customers", "c2", {"name": "B"})
    client.sync_now()
    assert sleeps == [3.0, 30.0, 3.0]
    assert (len(wifi.batches), len(cellular.batches)) == (5, 1)


def test_a_stopping_error_is_not_retried(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    wifi = link("wifi", script=[AuthRejected("revoked", code="device_revoked")])
    cellular = link("cellular", metered=True)
    client = make_client([wifi, cellular])
    client.record("customers", "c1", {"name": "A"})
    report = client.sync_now()
    assert isinstance(report.last_error, AuthRejected)
    assert (sleeps, len(wifi.batches), cellular.batches) == ([], 1, [])
    assert client.status().stopped == "device_revoked: revoked"


def test_scale_shrinks_every_wait_of_ours_but_never_a_retry_after(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    wifi = link("wifi", script=[down(), down(), down(), busy(5)])
    client = make_client([wifi], retry=RetryPolicy(jitter=False).scaled(0.01))
    client.record("customers", "c1", {"name": "A"})
    client.sync_now()
    assert sleeps == pytest.approx([0.03, 0.3, 0.9, 5.0])


@pytest.mark.parametrize(
    "bad",
    [
        {"first_wait": -1.0},
        {"max_wait": 10.0},
        {"switch_after": 0},
        {"multiplier": 0.5},
        {"scale": 0.0},
        {"max_attempts": 0},
    ],
)
def test_nonsense_policies_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)  # type: ignore[arg-type]
