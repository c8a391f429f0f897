"""Configuration, send outcome and event types of the TETRA adapter.

This module holds plain data only: no I/O, no parsing of PEI traffic.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from adapters._link import LinkStateChanged
from protocols.errors import ConfigError
from protocols.tetra import (
    MAX_TYPE4_BITS,
    SdsContent,
    SdsReceived,
    SdsRejected,
    SetServiceProfile,
)

__all__ = [
    "DEFAULT_SERVICE_PROFILES",
    "AdapterEvent",
    "AdapterSink",
    "PreparedSds",
    "SendOutcome",
    "TetraAdapterConfig",
]

#: Service profiles routed to the TE (the gateway) during initialisation, as svxlink
#: does (EN 300 392-5 ``AT+CTSP``): SDS-TL text 0x82, immediate text 0x89, text with
#: user data header 0x8A, concatenated SDS 0x8C, LIP 0x0A, and status (layer 2, 20).
DEFAULT_SERVICE_PROFILES: tuple[SetServiceProfile, ...] = (
    SetServiceProfile(profile=1, layer1=3, layer2=130),
    SetServiceProfile(profile=1, layer1=3, layer2=137),
    SetServiceProfile(profile=1, layer1=3, layer2=138),
    SetServiceProfile(profile=1, layer1=3, layer2=140),
    SetServiceProfile(profile=1, layer1=3, layer2=10),
    SetServiceProfile(profile=1, layer1=2, layer2=20),
)

#: What the adapter hands to its sink.
AdapterEvent = SdsReceived | SdsRejected | LinkStateChanged

#: The gateway's coroutine that receives adapter events, in order.
AdapterSink = Callable[[AdapterEvent], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class TetraAdapterConfig:
    """How to reach and drive one radio's PEI.

    Attributes:
        name: Adapter name, used in logs, task names and :class:`LinkStateChanged`.
        url: ``tcp://host:port`` or ``serial:///dev/ttyUSB0?baudrate=38400``.
        service_profiles: ``AT+CTSP`` commands sent during initialisation.
        keepalive_interval: Seconds between keepalive ``AT`` commands.
        command_timeout: Seconds the radio has to answer any command; on expiry the
            link is declared dead and reconnected.
        send_timeout: Seconds the radio has to report the final ``+CMGS`` status of
            an SDS it accepted.
        reconnect_min: Ceiling of the first reconnect delay, in seconds.
        reconnect_max: Largest reconnect delay, in seconds.
        reassembly_timeout: Seconds to wait for the missing parts of a concatenated
            text before answering with a negative report (0x5D).
        duplicate_window: Seconds an inbound SDS-TL transfer is remembered to recognise
            its retransmissions (same source, PID, message reference and content):
            longer than the radios' retransmission period, far shorter than the time
            a radio takes to reuse a message reference.
        max_pdu_bits: Largest SDS type-4 PDU assumed until ``AT+CMGS=?`` answers.
        radio_issi: The driven radio's own ISSI: the called party of a ``+CTSDSR``
            header that leaves it out.
    """

    name: str
    url: str
    service_profiles: tuple[SetServiceProfile, ...] = DEFAULT_SERVICE_PROFILES
    keepalive_interval: float = 15.0
    command_timeout: float = 5.0
    send_timeout: float = 30.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    reassembly_timeout: float = 60.0
    duplicate_window: float = 300.0
    max_pdu_bits: int = MAX_TYPE4_BITS
    radio_issi: str = "0"

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("name must not be empty.")
        for key in (
            "keepalive_interval",
            "command_timeout",
            "send_timeout",
            "reconnect_min",
            "reassembly_timeout",
            "duplicate_window",
        ):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ConfigError(f"{key}={value!r} must be a positive number of seconds.")
        if not self.reconnect_min <= self.reconnect_max < math.inf:
            raise ConfigError(
                f"reconnect_max={self.reconnect_max!r} must be >= reconnect_min "
                f"({self.reconnect_min!r}) and finite."
            )
        if not 16 <= self.max_pdu_bits <= MAX_TYPE4_BITS:
            raise ConfigError(f"max_pdu_bits={self.max_pdu_bits!r} is outside 16..2047.")


@dataclass(frozen=True, kw_only=True)
class SendOutcome:
    """What happened to one :meth:`TetraAdapter.send`.

    Attributes:
        ok: True if the radio reported every PDU as sent (``+CMGS: <i>,4``).
        message_references: SDS-TL message references of the PDUs handed to the
            radio, in order (empty for content without an SDS-TL header).
        sds_status: Last final ``+CMGS`` status (4 sent, 5 failed), None if none came.
        cme_error: PEI ``+CME ERROR`` code, if the radio refused a command.
        reason: Short explanation; empty when ``ok``.
    """

    ok: bool
    message_references: list[int] = field(default_factory=list)
    sds_status: int | None = None
    cme_error: int | None = None
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class PreparedSds:
    """PDUs ready to send with their SDS-TL message references (see ``TetraAdapter.prepare``).

    Attributes:
        destination: ISSI/GSSI/TSI to send to.
        content: What was prepared.
        pdus: (part, encoded payload, length in bits) per PDU.
        references: SDS-TL message references of the PDUs, in order.
    """

    destination: str
    content: SdsContent
    pdus: list[tuple[SdsContent, bytes, int]]
    references: list[int]
