"""Pre-coded status codebooks: national 16-bit TETRA status values <-> federation status codes.

A TETRA status value means nothing outside its organisation: 0x8004 is "available
at station" for German BOS and something else elsewhere (``protocols.md`` §4.2).
The federation therefore carries a *federation status code* (a short string such
as ``"on-scene"``) plus the origin value and label, and each receiving gateway
maps the code into its own organisation's codebook. A code the receiver's
codebook lacks is refused with a reason, never dropped or guessed.

Status 0 (emergency) is not in any codebook: it always becomes an emergency alert.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUILTIN_CODEBOOKS", "FEDERATION_STATUS_CODES", "Codebook", "StatusMeaning"]

#: Federation-wide status vocabulary, with its meaning in English.
FEDERATION_STATUS_CODES: dict[str, str] = {
    "priority-request-to-talk": "urgent request to talk",
    "available-radio": "available, reachable by radio",
    "available-station": "available at station",
    "en-route": "assignment accepted, en route",
    "on-scene": "arrived on scene",
    "request-to-talk": "request to talk",
    "not-available": "not available",
    "patient-on-board": "patient on board, to hospital",
    "at-destination": "arrived at destination or hospital",
}


@dataclass(frozen=True, kw_only=True)
class StatusMeaning:
    """One entry of a codebook."""

    tetra_value: int
    code: str
    label: str = ""


@dataclass(frozen=True, kw_only=True)
class Codebook:
    """An organisation's status codebook."""

    name: str
    meanings: tuple[StatusMeaning, ...]

    def by_value(self, value: int) -> StatusMeaning | None:
        """Return the meaning of a TETRA status value, or None if the codebook lacks it."""
        for meaning in self.meanings:
            if meaning.tetra_value == value:
                return meaning
        return None

    def by_code(self, code: str) -> StatusMeaning | None:
        """Return the entry for a federation status code, or None if the codebook lacks it."""
        for meaning in self.meanings:
            if meaning.code == code:
                return meaning
        return None


#: German BOS ("FMS status via SDS"); values agreed by two independent sources
#: (ftl/tetra-pei sds/sds.go and ragnarensar/sdspdu STATUS.declaration.yml).
_DE_BOS = Codebook(
    name="de-bos",
    meanings=(
        StatusMeaning(tetra_value=0x8002, code="priority-request-to-talk", label="Status 0"),
        StatusMeaning(tetra_value=0x8003, code="available-radio", label="Status 1"),
        StatusMeaning(tetra_value=0x8004, code="available-station", label="Status 2"),
        StatusMeaning(tetra_value=0x8005, code="en-route", label="Status 3"),
        StatusMeaning(tetra_value=0x8006, code="on-scene", label="Status 4"),
        StatusMeaning(tetra_value=0x8007, code="request-to-talk", label="Status 5"),
        StatusMeaning(tetra_value=0x8008, code="not-available", label="Status 6"),
        StatusMeaning(tetra_value=0x8009, code="patient-on-board", label="Status 7"),
        StatusMeaning(tetra_value=0x800A, code="at-destination", label="Status 8"),
    ),
)

#: Codebooks every gateway knows; configuration may add more under ``[codebooks.NAME]``.
BUILTIN_CODEBOOKS: dict[str, Codebook] = {_DE_BOS.name: _DE_BOS}
