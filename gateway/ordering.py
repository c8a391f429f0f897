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
back for :data:`HOLD_SECONDS` is taken in anyway (its predecessor is not coming: the
sender's copy of it expired or failed): order gives way before custody does. One that
finds the hold full is not taken in: it stays unacknowledged with its sender, which
sends it again.

Urgent messages (emergency and imminent peril) follow nothing: an emergency is never
held back behind a lost one, and the receiving gateway delivers them ahead of
everything else anyway.

Plain data structures, no I/O, no clock (time is an argument).
"""

from __future__ import annotations

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

#: What a chain is kept for: origin unit, destination (serialized) and priority.
PairKey = tuple[str, bytes, int]


class Chains:
    """Sender side, one per partner: which message in flight each new one follows."""

    def __init__(self) -> None:
        #: Per pair: (queue order, message id) of the messages sent, oldest first; those
        #: no longer in flight are dropped lazily.
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
        chain = [
            (o, m) for o, m in self._chains.get(pair, ()) if m != message_id and in_flight(m) == o
        ]
        before = [m for o, m in chain if o < order]
        chain.append((order, message_id))
        chain.sort()
        self._chains[pair] = chain
        return before[-1] if before else b""

    def sweep(self, in_flight: Callable[[bytes], int | None]) -> None:
        """Forget the messages no longer in flight, and the pairs left with none."""
        for pair in list(self._chains):
            chain = [(o, m) for o, m in self._chains[pair] if in_flight(m) == o]
            if chain:
                self._chains[pair] = chain
            else:
                del self._chains[pair]


@dataclass(frozen=True)
class Waiting:
    """A partner's message held back until the one it follows is in custody."""

    sender: str
    key: bytes  #: its own seen key
    follows: bytes  #: the seen key of the message it follows
    payload: bytes
    until: float


class HeldBack:
    """Receiver side: messages waiting for the one they follow, bounded in number."""

    def __init__(self, max_held: int = MAX_HELD, hold_seconds: float = HOLD_SECONDS) -> None:
        self.max_held = max_held
        self.hold_seconds = hold_seconds
        self._by_follows: dict[bytes, list[Waiting]] = {}
        self._keys: dict[bytes, Waiting] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def hold(self, sender: str, key: bytes, follows: bytes, payload: bytes, now: float) -> bool:
        """Hold ``payload`` (seen key ``key``) until ``follows`` is released.

        Returns:
            False if it was not held: the hold is full, or a copy of it is held already
            (which keeps its place and its deadline).
        """
        if key in self._keys or len(self._keys) >= self.max_held:
            return False
        waiting = Waiting(sender, key, follows, payload, now + self.hold_seconds)
        self._keys[key] = waiting
        self._by_follows.setdefault(follows, []).append(waiting)
        return True

    def release(self, follows: bytes) -> list[Waiting]:
        """The messages that followed ``follows`` (now in custody), in the order held."""
        released = self._by_follows.pop(follows, [])
        for waiting in released:
            del self._keys[waiting.key]
        return released

    def due(self, now: float) -> list[Waiting]:
        """Take out the messages that have waited their time, oldest first."""
        late = [w for w in self._keys.values() if w.until <= now]
        for waiting in late:
            del self._keys[waiting.key]
            followers = self._by_follows[waiting.follows]
            followers.remove(waiting)
            if not followers:
                del self._by_follows[waiting.follows]
        return late
