"""The isolation strategy on its own: what counts as a strike, halving, the proof rule."""

from __future__ import annotations

import pytest

from client_sync._isolate import Isolation, is_strike
from client_sync.errors import LinkFailure, ServerBusy

TXS = [f"tx{i}" for i in range(8)]


def status(code: int) -> ServerBusy:
    return ServerBusy(f"HTTP {code}", status=code)


@pytest.mark.parametrize(
    ("exc", "counts"),
    [
        (status(500), True),
        (status(502), True),
        (status(504), True),
        (status(503), False),  # the server says it is unavailable (ours: database down)
        (status(429), False),  # load shedding
        (ServerBusy("no status"), False),
        (LinkFailure("refused"), False),
        (LinkFailure("portal", status=500), False),  # not our server's answer
    ],
)
def test_only_a_5xx_other_than_503_is_a_strike(exc: BaseException, counts: bool) -> None:
    assert is_strike(exc) is counts


@pytest.mark.parametrize("exc", [status(429), status(503), LinkFailure("refused")])
def test_failures_that_are_not_strikes_never_split_a_batch(exc: BaseException) -> None:
    isolation = Isolation(threshold=3)
    for _ in range(50):
        isolation.failed(TXS, None, exc)
    assert isolation.groups == [] and isolation.head_strikes == 0


def test_k_strikes_halve_the_batch_and_interruptions_do_not_reset_the_count() -> None:
    isolation = Isolation(threshold=3)
    isolation.failed(TXS, None, status(500))
    isolation.failed(TXS, None, LinkFailure("blip"))  # neither counts nor resets
    isolation.failed(TXS, None, status(500))
    assert isolation.groups == []
    isolation.failed(TXS, None, status(500))
    assert [g.tx_ids for g in isolation.groups] == [TXS[:4], TXS[4:]]
    assert isolation.held() == TXS


def test_a_lone_transaction_is_parked_only_after_another_batch_got_through() -> None:
    isolation = Isolation(threshold=2)
    isolation.failed(["a", "b"], None, status(500))
    isolation.failed(["a", "b"], None, status(500))
    first, second = isolation.groups
    assert isolation.next_group() is first
    assert not isolation.failed(["a"], first, status(500))
    assert isolation.next_group() is second  # the other half takes its turn
    assert not isolation.failed(["b"], second, status(500))
    assert not isolation.failed(["a"], first, status(500))  # 2 strikes, no proof yet
    assert not isolation.failed(["b"], second, status(500))
    isolation.succeeded(None)  # new records got through: the server works
    assert isolation.failed(["a"], first, status(500))  # now it is parked
    assert [g.tx_ids for g in isolation.groups] == [["b"]]
