"""Order per origin unit and destination across the federation link, whatever is lost.

A gateway hands several envelopes to a partner at once (the link batches them), and a
partner takes each into custody on its own. If one is lost on the way (a failed publish,
a broken connection, a commit that failed at the partner), the sender sends it again
after the others: without more, the partner would deliver a radio's second text before
its first.

So the sender tells the partner which message each one must follow
(``Envelope.after``): the message of the same origin unit, destination and priority
that it sent to that partner just before and that the partner has not acknowledged yet
(:class:`Chains`). The partner takes a message into custody only if the one it follows
is already in its custody, checked in the same journal transaction; otherwise it holds
it back, unacknowledged, until that one arrives (:class:`HeldBack`). A message held
back for :data:`HOLD_SECONDS` (at least three of our own ack timeouts) since its latest
copy came, or three times that since its first, is taken in anyway: its predecessor is
not coming (the sender's copy of it expired or failed, or it cannot get in here), and
order gives way before custody does. Each copy the sender sends again restarts the wait
(up to that bound), since it shows the predecessor is still unacknowledged there.
One that finds the hold full (in all, or for its partner) is not taken in: it stays
unacknowledged with its sender, which sends it again.

Urgent messages (emergency and imminent peril) follow nothing: an emergency is never
held back behind a lost one, and the receiving gateway delivers them ahead of
everything else anyway.

Plain data structures, no I/O, no clock (time is an argument).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["HOLD_SECONDS", "MAX_HELD", "Chains", "HeldBack", "Waiting"]

#: Seconds a message waits for the one it follows before it is taken in anyway. The
#: sender sends an unacknowledged message again after its ack timeout (5 s by default)
#: and at once when it sees this gateway restart.
HOLD_SECONDS = 30.0
#: Messages held back at once, at most (all partners); beyond, one that would wait stays
#: with its sender, unacknowledged.
MAX_HELD = 4096
#: A message waits at most this many holds in all, whatever copies come meanwhile.
MAX_HOLDS = 3
#: Of those, at most this many from one partner: one cannot crowd out the others.
MAX_HELD_PER_PARTNER = 1024
#: Bytes held back at once, at most (all partners).
MAX_HELD_BYTES = 64 * 1024 * 1024

#: What a chain is kept for: origin unit, destination (serialized) and priority.
PairKey = tuple[str, bytes, int]


class Chains:
    """Sender side, one per partner: which message in flight each new one follows."""

    def __init__(self) -> None:
        #: Per pair: (queue order, message id) of the messages sent, sorted; those no
        #: longer in flight are dropped lazily.
        self._chains: dict[PairKey, list[tuple[int, bytes]]] = {}

    def __len__(self) -> int:
        return len(self._chains)

    def follow(
        self,
        pair: PairKey,
        order: int,
        message_id: bytes,
        in_flight: Callable[[bytes], int | None],
    ) -> bytes:
        """Record that ``message_id`` (queue order ``order``) goes out now for ``pair``.

        Args:
            pair: Its origin unit, destination and priority.
            order: Its place in the send queue (lower: earlier); a message sent again
                keeps its place.
            message_id: Its id.
            in_flight: The queue order of a message sent and not acknowledged yet, or None.

        Returns:
            The id of the message it must follow: the latest one before it in queue
            order still in flight, or ``b""`` if there is none.
        """
        chain = self._chains.setdefault(pair, [])
        entry = (order, message_id)
        at = bisect.bisect_left(chain, entry)
        if at == len(chain) or chain[at] != entry:
            chain.insert(at, entry)
        while at > 0:
            at -= 1
            earlier, earlier_id = chain[at]
            if in_flight(earlier_id) == earlier:
                return earlier_id
            del chain[at]  # acknowledged, or back in the queue (sent again later)
        return b""

    def sweep(self, in_flight: Callable[[bytes], int | None]) -> None:
        """Forget the messages no longer in flight, and the pairs left with none."""
        for pair in list(self._chains):
            chain = [(o, m) for o, m in self._chains[pair] if in_flight(m) == o]
            if chain:
                self._chains[pair] = chain
            else:
                del self._chains[pair]


@dataclass
class Waiting:
    """A partner's message held back until the one it follows is in custody."""

    sender: str
    key: bytes  #: its own seen key
    follows: bytes  #: the seen key of the message it follows
    payload: bytes
    arrived: float  #: when its first copy came
    until: float  #: when it is taken in anyway


class HeldBack:
    """Receiver side: messages waiting for the one they follow, bounded.

    Args:
        max_held: Messages held at once, at most.
        hold_seconds: How long a message waits after its latest copy.
        max_per_partner: Messages of one partner held at once, at most.
        max_bytes: Bytes held at once, at most.
    """

    def __init__(
        self,
        max_held: int = MAX_HELD,
        hold_seconds: float = HOLD_SECONDS,
        *,
        max_per_partner: int = MAX_HELD_PER_PARTNER,
        max_bytes: int = MAX_HELD_BYTES,
    ) -> None:
        self.max_held = max_held
        self.hold_seconds = hold_seconds
        self.max_per_partner = max_per_partner
        self.max_bytes = max_bytes
        self._by_follows: dict[bytes, list[Waiting]] = {}
        self._keys: dict[bytes, Waiting] = {}
        self._per_partner: Counter[str] = Counter()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def hold(self, sender: str, key: bytes, follows: bytes, payload: bytes, now: float) -> bool:
        """Hold ``payload`` (seen key ``key``) until ``follows`` is released.

        A copy of a message held already restarts its wait and, if it names another
        predecessor (the one it named is gone at the sender), waits for that one instead.

        Returns:
            False if it is not held: the hold is full (in all or for ``sender``).
        """
        held = self._keys.get(key)
        if held is not None:
            held.until = now + self.hold_seconds
            if held.follows != follows:
                self._unlink(held)
                held.follows = follows
                self._by_follows.setdefault(follows, []).append(held)
            return True
        if (
            len(self._keys) >= self.max_held
            or self._per_partner[sender] >= self.max_per_partner
            or self._bytes + len(payload) > self.max_bytes
        ):
            return False
        waiting = Waiting(sender, key, follows, payload, now, now + self.hold_seconds)
        self._keys[key] = waiting
        self._by_follows.setdefault(follows, []).append(waiting)
        self._per_partner[sender] += 1
        self._bytes += len(payload)
        return True

    def put_back(self, waiting: Waiting, now: float) -> bool:
        """Hold again a message released before its predecessor was in custody after all.

        It keeps the time its first copy came. Returns False if the hold is full.
        """
        fresh = waiting.key not in self._keys
        if not self.hold(waiting.sender, waiting.key, waiting.follows, waiting.payload, now):
            return False
        if fresh:
            self._keys[waiting.key].arrived = waiting.arrived
        return True

    def release(self, follows: bytes) -> list[Waiting]:
        """Take out the messages that followed ``follows`` (now in custody).

        In the order held, then those that followed them in turn: taken in together,
        they share a commit, and its journal transaction keeps their order.
        """
        released: list[Waiting] = []
        keys = [follows]
        while keys:
            for waiting in self._by_follows.pop(keys.pop(0), []):
                self._forget(waiting)
                released.append(waiting)
                keys.append(waiting.key)
        return released

    def discard(self, key: bytes) -> None:
        """Forget a held copy of ``key``: the message was taken in from another copy."""
        waiting = self._keys.get(key)
        if waiting is not None:
            self._unlink(waiting)
            self._forget(waiting)

    def due(self, now: float) -> list[Waiting]:
        """Take out the messages that have waited their time, oldest first.

        A message waits :attr:`hold_seconds` after its latest copy, and never more than
        :data:`MAX_HOLDS` holds in all: a predecessor that the sender keeps sending but
        that never gets in here must not keep its followers until they expire. One whose
        predecessor is held too waits for it (it is released behind it), unless it is
        overdue by a whole hold: a partner naming predecessors in a circle cannot keep
        them here for good.
        """
        late = []
        for waiting in self._keys.values():
            deadline = self.deadline(waiting)
            if deadline <= now and (
                waiting.follows not in self._keys or deadline + self.hold_seconds <= now
            ):
                late.append(waiting)
        for waiting in late:
            self._unlink(waiting)
            self._forget(waiting)
        return late

    def deadline(self, waiting: Waiting) -> float:
        """When ``waiting`` is taken in anyway (see :meth:`due`)."""
        return min(waiting.until, waiting.arrived + MAX_HOLDS * self.hold_seconds)

    def follows_of(self, key: bytes) -> bytes | None:
        """The seen key the held message ``key`` waits for (None: it is not held)."""
        waiting = self._keys.get(key)
        return None if waiting is None else waiting.follows

    def _unlink(self, waiting: Waiting) -> None:
        followers = self._by_follows[waiting.follows]
        followers.remove(waiting)
        if not followers:
            del self._by_follows[waiting.follows]

    def _forget(self, waiting: Waiting) -> None:
        del self._keys[waiting.key]
        self._per_partner[waiting.sender] -= 1
        if not self._per_partner[waiting.sender]:
            del self._per_partner[waiting.sender]
        self._bytes -= len(waiting.payload)
