"""Federation members: the gateways a country runs, each with its own share of the work.

A country is one *member* of the federation by default, named by its country code
(``DE``). A country that outgrows one gateway splits its national systems between several
gateways, each a member of its own: ``DE`` and ``DE-2``, ``DE-NORTH``... (the country
code, a hyphen, and a tag of 1 to 8 upper-case letters or digits). Each member has its own
topics on the broker, its own certificate, journal, epoch and send windows, so partners
keep every guarantee per member exactly as per country: custody, order per sender and
receiver, receipts, takeover by a standby instance.

Partners route a message for a unit of a split country to the member that serves it
(:meth:`gateway.node.Gateway` asks, in order: the partner's configuration, the member the
unit's presence last came from, the member named like the country).
"""

from __future__ import annotations

import re

__all__ = ["is_member", "member_nation", "validate_member"]

_MEMBER = re.compile(r"[A-Z]{2}(?:-[A-Z0-9]{1,8})?")


def validate_member(member: str) -> str:
    """Return ``member`` if it is a member id (``DE``, ``DE-2``).

    Raises:
        ValueError: It is not.
    """
    if not _MEMBER.fullmatch(member):
        raise ValueError(
            f"{member!r} is not a federation member: a country code in upper case (DE), "
            "optionally with a hyphen and a tag of 1-8 upper-case letters or digits (DE-2)"
        )
    return member


def is_member(member: str) -> bool:
    """Return True if ``member`` is a member id."""
    return _MEMBER.fullmatch(member) is not None


def member_nation(member: str) -> str:
    """The country of ``member``: ``DE`` for ``DE`` and for ``DE-2``."""
    return member[:2]
