"""Finding the transaction the server keeps failing on, by halving whole transactions.

A *strike* is a failed send that says something about what was sent: a 5xx other
than 503 (the server took the batch and failed on it). 503 (the server says it is
unavailable: ours answers it when its database is down), 429, network errors and
garbage answers are about the server or the link, never the batch: they neither
count nor reset a count.

The ordinary batch (the oldest pending transactions) that gets ``threshold``
strikes in a row is set aside as two *suspect groups*, its halves; the rest of the
queue goes on in ordinary batches and, when it is empty, the suspect groups are
sent alone, least recently tried first (so a healthy half is delivered between the
tries of a failing one). A group with ``threshold`` strikes is halved again; a
single transaction with ``threshold`` strikes is parked, but only once another batch
was accepted since its isolation began (its halves inherit that proof): the server
works, and it is this transaction it fails on. Without proof (everything fails)
nothing is parked and the suspects are retried with the backoff like any batch; a
lone suspect with nothing else pending waits, struck, until the next batch of new
records gets through. The cost of this rule: a server that starts failing every
batch with 500 in the middle of an isolation (after a half got through) can get a
healthy transaction parked; it stays resubmittable, and 503 (our server's answer
when its database is down) never counts.

One isolation at a time: while groups are set aside, an ordinary batch that reaches
the threshold keeps its strikes and takes turns with the groups; it is split when
the groups are gone. This bounds the state to one batch's transactions. The state is
in memory: it outlives drain passes, not the process (a restart starts over, at the
cost of ``threshold`` more tries per halving).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ServerBusy

#: 503 means "unavailable, come back later" (ours: database down): not the batch's fault.
UNAVAILABLE = 503


def is_strike(exc: BaseException) -> bool:
    """True for a failure that points at the batch: a 5xx other than 503."""
    status = getattr(exc, "status", None)
    return (
        isinstance(exc, ServerBusy)
        and isinstance(status, int)
        and 500 <= status <= 599
        and status != UNAVAILABLE
    )


@dataclass(slots=True)
class Group:
    """Transactions set aside together, with their strikes in a row."""

    tx_ids: list[str]
    strikes: int = 0
    #: Another batch was accepted since the isolation of this group began.
    proven: bool = False
    #: Attempt number of its last try (the least recently tried goes first).
    tried: int = -1


@dataclass(slots=True)
class Isolation:
    """Strikes of the ordinary batch, and the suspect groups set aside."""

    threshold: int
    groups: list[Group] = field(default_factory=list)
    #: First transaction of the ordinary batch that failed last, and its strikes.
    head: str | None = None
    head_strikes: int = 0
    head_tried: int = -1
    attempts: int = 0

    def idle(self) -> bool:
        """No strikes and nothing set aside: the next ordinary batch may be taken ahead."""
        return not self.groups and self.head_strikes == 0

    def held(self) -> list[str]:
        """Every transaction set aside; ordinary batches skip them."""
        return [tx for g in self.groups for tx in g.tx_ids]

    def held_count(self) -> int:
        """How many transactions are set aside."""
        return sum(len(g.tx_ids) for g in self.groups)

    def turn(self) -> Group | None:
        """The group whose turn it is before an ordinary batch; None: ordinary first."""
        waiting = self.next_group()
        if waiting is None or self.head_strikes < self.threshold:
            return None  # fresh work goes first; the suspects wait
        return waiting if waiting.tried < self.head_tried else None

    def next_group(self) -> Group | None:
        """The least recently tried group, or None."""
        return min(self.groups, key=lambda g: g.tried, default=None)

    def drop(self, group: Group) -> None:
        """Forget a group (its transactions are no longer pending)."""
        self.groups.remove(group)

    def narrow(self, group: Group, sent: list[str]) -> Group:
        """The batch took only ``sent`` of the group (a smaller channel): split it there."""
        if len(sent) == len(group.tx_ids):
            return group
        at = self.groups.index(group)
        rest = [t for t in group.tx_ids if t not in set(sent)]
        taken, rest_group = Group(sent, proven=group.proven), Group(rest, proven=group.proven)
        self.groups[at : at + 1] = [taken, rest_group]
        return taken

    def succeeded(self, group: Group | None) -> None:
        """A batch was accepted: it leaves the suspects; it proves the others' case."""
        self.attempts += 1
        if group is None:
            self.head, self.head_strikes = None, 0
        else:
            self.groups.remove(group)
        for other in self.groups:
            other.proven = True

    def failed(self, tx_ids: list[str], group: Group | None, exc: BaseException) -> bool:
        """Account for a failed send; True if ``group`` is now to be parked."""
        self.attempts += 1
        if group is None:
            self._ordinary_failed(tx_ids, exc)
            return False
        group.tried = self.attempts
        if not is_strike(exc):
            return False
        group.strikes += 1
        if group.strikes < self.threshold:
            return False
        if len(group.tx_ids) > 1:
            at = self.groups.index(group)
            self.groups[at : at + 1] = _halves(group.tx_ids, group.proven)
            return False
        if group.proven:
            self.groups.remove(group)
            return True
        return False

    def _ordinary_failed(self, tx_ids: list[str], exc: BaseException) -> None:
        self.head_tried = self.attempts
        if not is_strike(exc):
            return
        if tx_ids[0] != self.head:
            self.head, self.head_strikes = tx_ids[0], 0
        self.head_strikes += 1
        if self.head_strikes < self.threshold or self.groups:
            return
        if len(tx_ids) == 1:
            self.groups = [Group(list(tx_ids), strikes=self.head_strikes, tried=self.attempts)]
        else:
            self.groups = _halves(tx_ids)
        self.head, self.head_strikes = None, 0


def _halves(tx_ids: list[str], proven: bool = False) -> list[Group]:
    middle = (len(tx_ids) + 1) // 2
    return [Group(tx_ids[:middle], proven=proven), Group(tx_ids[middle:], proven=proven)]
