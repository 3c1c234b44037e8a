"""The retry promise, driven by tenacity: 3 s, 30 s, switch channel, then back off.

After the 1st failed attempt wait ``first_wait`` (3 s), after the 2nd ``second_wait``
(30 s). Every ``switch_after`` (3) consecutive *link* failures on one channel, the
next channel in the ChannelSet takes over and the next attempt goes out on it at
once (it has not failed yet). From the 3rd failure on, waits grow by decorrelated
jitter: ``uniform(second_wait, previous * multiplier)``, capped at ``max_wait``
(300 s), so they never fall below 30 s, never exceed the cap, and devices that
failed together do not retry together. With ``jitter=False`` the wait is the
deterministic ``previous * multiplier`` (capped).

Only LinkFailure (the link does not reach the server) counts toward switching.
ServerBusy (429/5xx) proves the link works: it resets the link-failure count, so a
busy server never burns cellular data. Its Retry-After is honoured: the wait is
never shorter than it (up to ``max_retry_after``, beyond which the header is taken
for a confused server). A success resets the schedule. It stays on the channel
that worked until ``prefer_again_after`` (300 s) has passed since the switch, then
the next success sends the following batch out on the preferred channel again: a
dead wifi costs its 3 s + 30 s once per five minutes, not once per batch, and a
wifi that came back is used again within five minutes. This state lives in
Backoff and outlives one drain pass, so a device that keeps failing does not
restart at 3 s with every pass.

``scale`` multiplies every wait of the policy, so a simulation shrinks time by one
factor and the schedule keeps its shape. It never shrinks a Retry-After: that is
the server's instruction in real seconds, and coming back early violates it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import tenacity

from ._channels import Channel, ChannelSet
from .errors import LinkFailure, ServerBusy

log = logging.getLogger("client_sync.retry")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to retry a failed send, and when to switch channel. Seconds throughout."""

    #: Wait after the first failure: usually a blip.
    first_wait: float = 3.0
    #: Wait after the second failure: a bad patch. Also the floor of later waits.
    second_wait: float = 30.0
    #: Consecutive link failures on one channel before switching to the next.
    switch_after: int = 3
    #: Cap of every computed wait.
    max_wait: float = 300.0
    #: Growth factor of the decorrelated-jitter backoff.
    multiplier: float = 3.0
    #: Randomise backoff waits (decorrelated jitter); False gives exact growth.
    jitter: bool = True
    #: Longest Retry-After honoured; a longer one is treated as this.
    max_retry_after: float = 3600.0
    #: Seconds on a fallback channel before a success hands back to the preferred one.
    prefer_again_after: float = 300.0
    #: Attempts per batch within one drain pass; None keeps trying until stopped.
    max_attempts: int | None = None
    #: Factor applied to every wait (simulations shrink time with it).
    scale: float = 1.0
    #: 5xx failures in a row (503 excepted) before a batch is split by halves, and
    #: before a lone transaction is parked as ``server_error`` (see _isolate.py).
    isolate_after: int = 3

    def __post_init__(self) -> None:
        if min(self.first_wait, self.second_wait, self.max_retry_after,
               self.prefer_again_after) < 0:  # fmt: skip
            raise ValueError("waits must be >= 0")
        if self.max_wait < max(self.first_wait, self.second_wait):
            raise ValueError("max_wait must be >= first_wait and second_wait")
        if self.switch_after < 1 or self.multiplier < 1 or self.scale <= 0:
            raise ValueError("need switch_after >= 1, multiplier >= 1, scale > 0")
        if self.isolate_after < 1:
            raise ValueError("isolate_after must be >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 or None")

    def scaled(self, factor: float) -> RetryPolicy:
        """This policy with every wait multiplied by ``factor``."""
        return replace(self, scale=self.scale * factor)


class Backoff:
    """Retry state that outlives an attempt: failure counts, channel in use, last wait."""

    def __init__(
        self,
        policy: RetryPolicy,
        channels: ChannelSet,
        rng: random.Random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.channels = channels
        self._rng = rng
        self._monotonic = monotonic
        self.failures = 0
        self.link_failures = 0
        self._previous = policy.second_wait
        self._upcoming = 0.0
        #: When the current fallback channel took over (monotonic).
        self._switched_at = 0.0
        #: No request before this (monotonic) time: the last Retry-After, which outlives
        #: a drain pass, so neither a new pass nor ``sync_now()`` comes back early.
        self._not_before = 0.0
        #: When (monotonic) the next attempt is due after a failure; None after a success.
        self.next_try: float | None = None

    def failed(self, exc: BaseException | None) -> float:
        """Account for one failed attempt; return the wait before the next one."""
        policy = self.policy
        self.failures += 1
        if isinstance(exc, LinkFailure):
            self.link_failures += 1
            if self.link_failures >= policy.switch_after and self.channels.advance():
                self.link_failures = 0
                self._switched_at = self._monotonic()
                log.info("switching to channel %s", self.channels.current.name)
                self._upcoming = 0.0
                self.next_try = self._monotonic()
                return 0.0
        elif isinstance(exc, ServerBusy):
            self.link_failures = 0  # the server answered: the link works
        if self.failures == 1:
            wait = policy.first_wait
        elif self.failures == 2:
            wait = policy.second_wait
        else:
            ceiling = min(policy.max_wait, self._previous * policy.multiplier)
            lower = min(policy.second_wait, ceiling)
            wait = self._rng.uniform(lower, ceiling) if policy.jitter else ceiling
            self._previous = wait
        wait = min(wait, policy.max_wait) * policy.scale
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # Retry-After is the server's instruction in its own real seconds: a
            # simulation that shrinks our waits must still not come back early.
            held = min(float(retry_after), policy.max_retry_after)
            wait = max(wait, held)
            self._not_before = self._monotonic() + held
        self._upcoming = wait
        self.next_try = self._monotonic() + wait
        return wait

    def succeeded(self) -> None:
        """A batch got through: start the schedule over; maybe hand back to the preferred."""
        self.failures = 0
        self.link_failures = 0
        self._previous = self.policy.second_wait
        self._not_before = 0.0
        self.next_try = None
        on_fallback_for = self._monotonic() - self._switched_at
        if on_fallback_for >= self.policy.prefer_again_after * self.policy.scale:
            self.channels.reset()

    def run(
        self,
        attempt: Callable[[Channel], T],
        *,
        sleep: Callable[[float], object],
        halt: threading.Event,
        deadline: float | None = None,
    ) -> T:
        """Call ``attempt(current_channel)`` until it returns or raises a non-retryable error.

        With a ``deadline`` (monotonic), a wait that would end past it is not begun:
        OutOfTime is raised instead, carrying the last failure.
        """
        left = self._not_before - self._monotonic()
        if left > 0:
            if deadline is not None and self._monotonic() + left > deadline:
                raise OutOfTime(None)  # a Retry-After from an earlier pass outlasts us
            sleep(left)  # a Retry-After from an earlier pass still holds
        stop: tenacity.stop.stop_base = tenacity.stop_when_event_set(halt)
        if self.policy.max_attempts is not None:
            stop = stop | tenacity.stop_after_attempt(self.policy.max_attempts)
        if deadline is not None:
            stop = stop | _StopAt(deadline, self._monotonic)
        retrying = tenacity.Retrying(
            sleep=_skip_zero(sleep),
            wait=lambda _state: self._upcoming,
            retry=tenacity.retry_if_exception(_retryable),
            stop=stop,
            after=self._after,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(lambda: attempt(self.channels.current))

    def _after(self, state: tenacity.RetryCallState) -> None:
        self.failed(state.outcome.exception() if state.outcome else None)

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info(
            "attempt %d failed (%s); next on %s in %.1f s",
            self.failures,
            exc,
            self.channels.current.name,
            state.upcoming_sleep,
        )


class OutOfTime(Exception):
    """Internal: the next wait would end past the caller's deadline; ``last`` failed last."""

    def __init__(self, last: BaseException | None) -> None:
        super().__init__("out of time")
        self.last = last


class _StopAt(tenacity.stop.stop_base):
    """Raise OutOfTime when the upcoming wait would end past ``deadline``."""

    def __init__(self, deadline: float, monotonic: Callable[[], float]) -> None:
        self.deadline = deadline
        self.monotonic = monotonic

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        if self.monotonic() + (state.upcoming_sleep or 0.0) > self.deadline:
            raise OutOfTime(state.outcome.exception() if state.outcome else None)
        return False


def _retryable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retryable", False))


def _skip_zero(sleep: Callable[[float], object]) -> Callable[[float], None]:
    def nap(seconds: float) -> None:
        if seconds > 0:
            sleep(float(seconds))

    return nap
