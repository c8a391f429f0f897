"""Glue between SIP MESSAGE requests and the MCData codecs, shared by adapter and simulator.

Decoding: split the multipart body with :func:`protocols.sip.parse_multipart`, decode
its parts with :func:`protocols.mcdata.decode_mcdata_info` and
:func:`protocols.mcdata.decode_sds_message`, and work out sender and target from the
mcdatainfo. Every failure becomes a :class:`~protocols.sip.SipProtocolError` carrying
the status to answer (400 malformed, 415 unsupported content, 488 unsupported request
type). Encoding: the reverse, into a MESSAGE built by
:func:`protocols.sip.build_message_request`.

Also here: the documented mapping from a sink's refusal to a SIP status, and the
Warning header text. No I/O.
"""

from __future__ import annotations

import enum
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from adapters.mcdata._config import (
    McdataGroup,
    McdataNotificationReceived,
    McdataSdsReceived,
    McdataSendOutcome,
    McdataUser,
    SdsTarget,
)
from protocols.errors import (
    DeliveryRefused,
    LinkError,
    LocalProtocolError,
    RemoteProtocolError,
    RoutingError,
)
from protocols.mcdata import (
    MIME_MCDATA_INFO,
    MIME_MCDATA_PAYLOAD,
    MIME_MCDATA_SIGNALLING,
    DataPayload,
    DispositionRequest,
    McdataId,
    McdataInfo,
    NotificationType,
    Payload,
    RequestType,
    SdsMessage,
    SdsNotification,
    SdsSignalling,
    date_time_from_unix,
    decode_mcdata_info,
    decode_sds_message,
    encode_mcdata_info,
    encode_sds_message,
)
from protocols.sip import (
    REASON_PHRASES,
    BodyPart,
    RandomBits,
    SipHeaders,
    SipProtocolError,
    SipRequest,
    SipResponse,
    build_message_request,
    encode_multipart,
    make_boundary,
    make_branch,
    make_call_id,
    make_tag,
    parse_multipart,
)
from protocols.tetra import DeliveryStatus

__all__ = [
    "ACCEPT",
    "ALLOWED_METHODS",
    "RefusalStatus",
    "build_mcdata_request",
    "build_notification",
    "build_sds",
    "decode_mcdata_request",
    "encode_mcdata_body",
    "message_ids",
    "notification_info",
    "refusal_status",
    "response_text",
    "sds_info",
    "send_outcome",
    "warning_header",
]

#: Methods answered by the adapter and the simulator (Allow header of a 405).
ALLOWED_METHODS = "MESSAGE, OPTIONS"
#: Accept header of a 415: what an MCData SDS MESSAGE must carry.
ACCEPT = "multipart/mixed"

_WARNING_TEXT = re.compile(r'[^\x20-\x7e]|["\\]')
_MAX_WARNING = 200


class RefusalStatus(enum.IntEnum):
    """SIP statuses a sink may put in ``DeliveryRefused.reason_code`` (any 4xx-6xx works)."""

    #: The gateway's policy refuses the message (not allowed across this border).
    FORBIDDEN = 403
    #: The target user or group is not known / not mapped to an LMR identity.
    NOT_FOUND = 404
    #: The message is too large for the LMR side.
    TOO_LARGE = 413
    #: The LMR user is not reachable right now (radio off, out of coverage).
    TEMPORARILY_UNAVAILABLE = 480
    #: The LMR user or radio is busy.
    BUSY_HERE = 486
    #: The content cannot be carried to the LMR side.
    NOT_ACCEPTABLE_HERE = 488
    #: The LMR system (or the gateway) is down or overloaded.
    SERVICE_UNAVAILABLE = 503


#: SDS-TL delivery statuses (EN 300 392-2 table 29.16) a refusal may carry: the gateway's
#: common refusal codes (``DeliveryRefused.reason_code``), mapped to SIP statuses.
_SDS_TL_TO_SIP: dict[int, int] = {
    DeliveryStatus.NETWORK_OVERLOAD: 503,
    DeliveryStatus.SERVICE_PERMANENTLY_UNAVAILABLE: 503,
    DeliveryStatus.SERVICE_TEMPORARILY_UNAVAILABLE: 503,
    DeliveryStatus.SOURCE_NOT_AUTHORIZED: 403,
    DeliveryStatus.DESTINATION_NOT_AUTHORIZED: 403,
    DeliveryStatus.UNKNOWN_DESTINATION: 404,
    DeliveryStatus.UNKNOWN_FORWARD_ADDRESS: 404,
    DeliveryStatus.GROUP_ADDRESS_WITH_INDIVIDUAL_SERVICE: 488,
    DeliveryStatus.VALIDITY_EXPIRED_NOT_RECEIVED: 480,
    DeliveryStatus.VALIDITY_EXPIRED_NOT_CONSUMED: 480,
    DeliveryStatus.DELIVERY_FAILED: 480,
    DeliveryStatus.DESTINATION_NOT_REGISTERED: 480,
    DeliveryStatus.DESTINATION_QUEUE_FULL: 486,
    DeliveryStatus.MESSAGE_TOO_LONG: 413,
    DeliveryStatus.DESTINATION_NO_SDS_TL: 488,
    DeliveryStatus.DESTINATION_HOST_NOT_CONNECTED: 480,
    DeliveryStatus.PROTOCOL_NOT_SUPPORTED: 488,
    DeliveryStatus.CODING_SCHEME_NOT_SUPPORTED: 488,
    DeliveryStatus.DESTINATION_MEMORY_FULL_DISCARDED: 486,
    DeliveryStatus.DESTINATION_NOT_ACCEPTING: 480,
    DeliveryStatus.CONCATENATED_TOO_LONG: 413,
    DeliveryStatus.DESTINATION_PROHIBITED: 403,
    DeliveryStatus.CANNOT_ROUTE_EXTERNAL: 404,
    DeliveryStatus.UNKNOWN_EXTERNAL_NUMBER: 404,
    DeliveryStatus.DESTINATION_NOT_REACHABLE: 480,
    DeliveryStatus.TEXT_DISTRIBUTION_ERROR: 480,
    DeliveryStatus.CORRUPT_INFORMATION_ELEMENT: 400,
    DeliveryStatus.CONCATENATION_INCOMPLETE: 400,
    DeliveryStatus.DESTINATION_ENGAGED_SWMI: 486,
    DeliveryStatus.DESTINATION_ENGAGED: 486,
}


def refusal_status(error: BaseException) -> tuple[int, str]:
    """Map a sink's exception to the SIP status and reason phrase to answer.

    ================================================ =====================================
    Exception raised by the sink                     SIP final response
    ================================================ =====================================
    ``DeliveryRefused(reason_code=400..699)``        that status (see :class:`RefusalStatus`)
    ``DeliveryRefused(reason_code=<SDS-TL status>)`` by EN 300 392-2 table 29.16 meaning:
                                                     unknown destination 404, not
                                                     authorized / prohibited 403, not
                                                     reachable / not registered / delivery
                                                     failed 480, engaged / queue or memory
                                                     full 486, too long 413, protocol or
                                                     coding not supported 488, corrupt 400,
                                                     overload / service unavailable 503
    ``DeliveryRefused`` with no or another code      403 Forbidden
    ``RoutingError``                                 404 Not Found
    ``LinkError`` (LMR side down)                    503 Service Unavailable
    any other ``Exception`` (a gateway bug)          500 Server Internal Error
    ================================================ =====================================

    The reason phrase is the standard one of RFC 3261 §21 (``"Refused"`` for a status
    without one); the exception's ``reply_hint`` goes in a Warning header.
    """
    if isinstance(error, DeliveryRefused):
        code = error.reason_code
        if isinstance(code, int) and 400 <= code <= 699:
            status = code
        else:
            status = _SDS_TL_TO_SIP.get(code, 403) if isinstance(code, int) else 403
    elif isinstance(error, RoutingError):
        status = 404
    elif isinstance(error, LinkError):
        status = 503
    else:
        status = 500
    return status, REASON_PHRASES.get(status, "Refused")


def warning_header(agent: str, text: str) -> tuple[str, str]:
    """Return a ``Warning: 399 agent "text"`` field (RFC 3261 §20.43), text made safe."""
    safe = _WARNING_TEXT.sub("'", text)[:_MAX_WARNING]
    return "Warning", f'399 {agent} "{safe}"'


def sds_info(
    sender: McdataId,
    target: SdsTarget,
    *,
    emergency: bool = False,
    alert: bool = False,
    imminent_peril: bool = False,
) -> McdataInfo:
    """Return the mcdatainfo of a one-to-one or group standalone SDS.

    Raises:
        LocalProtocolError: An identity cannot be carried in mcdatainfo.
    """
    group = isinstance(target, McdataGroup)
    return McdataInfo(
        request_type=RequestType.GROUP_SDS if group else RequestType.ONE_TO_ONE_SDS,
        calling_user=sender,
        called_user=None if group else target.id,
        request_uri=target.id,
        group=target.id if group else None,
        emergency=True if emergency else None,
        alert=True if alert else None,
        imminent_peril=True if imminent_peril else None,
    )


def notification_info(sender: McdataId, recipient: McdataId) -> McdataInfo:
    """Return the mcdatainfo of a disposition notification from ``sender`` to ``recipient``.

    Raises:
        LocalProtocolError: An identity cannot be carried in mcdatainfo.
    """
    return McdataInfo(
        request_type=RequestType.ONE_TO_ONE_SDS,
        calling_user=sender,
        called_user=recipient,
        request_uri=recipient,
    )


def encode_mcdata_body(
    info: McdataInfo, message: SdsMessage | SdsNotification, randbits: RandomBits
) -> tuple[str, bytes]:
    """Encode an SDS or notification as the multipart/mixed body of a SIP MESSAGE.

    Returns:
        The Content-Type value and the body.

    Raises:
        LocalProtocolError: A value does not fit its IE.
    """
    signalling, data = encode_sds_message(message)
    parts = [
        BodyPart(content_type=MIME_MCDATA_INFO, body=encode_mcdata_info(info)),
        BodyPart(content_type=MIME_MCDATA_SIGNALLING, body=signalling),
    ]
    if data is not None:
        parts.append(BodyPart(content_type=MIME_MCDATA_PAYLOAD, body=data))
    for _ in range(2):
        try:
            return encode_multipart(parts, make_boundary(randbits))
        except LocalProtocolError:  # the random boundary occurs in a part: draw another
            continue
    return encode_multipart(parts, make_boundary(randbits))


def build_sds(
    sender: str,
    target: SdsTarget,
    payloads: Iterable[Payload],
    *,
    now: float,
    conversation_id: uuid.UUID | None = None,
    message_id: uuid.UUID | None = None,
    in_reply_to: uuid.UUID | None = None,
    disposition_request: DispositionRequest | int = DispositionRequest.NONE,
    emergency: bool = False,
    alert: bool = False,
    imminent_peril: bool = False,
    user_location: bytes | None = None,
    application_id: int | None = None,
) -> tuple[McdataInfo, SdsMessage]:
    """Return the mcdatainfo and the SDS of a standalone SDS (new UUIDs where None).

    Raises:
        LocalProtocolError: A value cannot be carried (e.g. no payload, bad identity).
    """
    signalling = SdsSignalling(
        date_time=date_time_from_unix(int(now)),
        conversation_id=conversation_id if conversation_id is not None else uuid.uuid4(),
        message_id=message_id if message_id is not None else uuid.uuid4(),
        in_reply_to=in_reply_to,
        application_id=application_id,
        disposition_request=disposition_request,
        user_location=user_location,
        sender=McdataId(sender),
    )
    message = SdsMessage(signalling=signalling, data=DataPayload(payloads=tuple(payloads)))
    info = sds_info(
        McdataId(sender), target, emergency=emergency, alert=alert, imminent_peril=imminent_peril
    )
    return info, message


def build_notification(
    sender: str,
    recipient: str,
    notification: NotificationType | int,
    *,
    now: float,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    application_id: int | None = None,
) -> tuple[McdataInfo, SdsNotification]:
    """Return the mcdatainfo and the SDS NOTIFICATION of a disposition notification.

    Raises:
        LocalProtocolError: A value cannot be carried.
    """
    message = SdsNotification(
        notification=notification,
        date_time=date_time_from_unix(int(now)),
        conversation_id=conversation_id,
        message_id=message_id,
        application_id=application_id,
        sender=McdataId(sender),
    )
    return notification_info(McdataId(sender), McdataId(recipient)), message


def build_mcdata_request(
    *,
    sender: str,
    target_uri: str,
    info: McdataInfo,
    message: SdsMessage | SdsNotification,
    host: str,
    port: int,
    transport: str,
    randbits: RandomBits,
) -> SipRequest:
    """Build the SIP MESSAGE carrying one SDS or notification (fresh tag, branch, Call-ID).

    Args:
        sender: From URI (the sending MCData user).
        target_uri: Request-URI and To URI (the target user or group).
        info: The mcdatainfo body.
        message: The SDS or notification.
        host: Our host for Via and Call-ID (IPv6 in brackets).
        port: Our port for Via (where we accept requests).
        transport: Via transport (TCP or TLS).
        randbits: Random source.

    Raises:
        LocalProtocolError: A value is not allowed (e.g. a sender that is not a URI).
    """
    content_type, body = encode_mcdata_body(info, message, randbits)
    return build_message_request(
        request_uri=target_uri,
        from_uri=sender,
        from_tag=make_tag(randbits),
        to_uri=target_uri,
        call_id=make_call_id(randbits, host),
        cseq=1,
        via_sent_by=f"{host}:{port}",
        branch=make_branch(randbits),
        body=body,
        content_type=content_type,
        via_transport=transport,
    )


@dataclass(frozen=True)
class _Parts:
    info: BodyPart
    signalling: BodyPart
    payload: BodyPart | None


def _only(parts: Iterable[BodyPart], media_type: str) -> BodyPart | None:
    found = [part for part in parts if part.media_type == media_type]
    if len(found) > 1:
        raise SipProtocolError(f"MCData MESSAGE has {len(found)} {media_type} parts.")
    return found[0] if found else None


def _split(request: SipRequest) -> _Parts:
    content_type = request.headers.get("Content-Type")
    if content_type is None or not request.body:
        raise SipProtocolError("MESSAGE has no body; an MCData SDS needs a multipart body.")
    parts = parse_multipart(content_type, request.body)
    signalling = _only(parts, MIME_MCDATA_SIGNALLING)
    if signalling is None:
        types = ", ".join(sorted({part.media_type for part in parts}))
        raise SipProtocolError(
            f"MESSAGE carries no {MIME_MCDATA_SIGNALLING} part (only {types}).",
            status=415,
            reason="Unsupported Media Type",
        )
    info = _only(parts, MIME_MCDATA_INFO)
    if info is None:
        raise SipProtocolError(f"MCData MESSAGE has no {MIME_MCDATA_INFO} part.")
    return _Parts(info=info, signalling=signalling, payload=_only(parts, MIME_MCDATA_PAYLOAD))


def _target(info: McdataInfo, request_uri: str) -> SdsTarget:
    kind = info.request_type
    if kind == RequestType.GROUP_SDS or (kind is None and info.group is not None):
        group = info.group or info.request_uri
        if group is None:
            raise SipProtocolError("Group SDS names no MCData group ID in mcdatainfo.")
        return McdataGroup(group)
    if kind not in (None, RequestType.ONE_TO_ONE_SDS):
        raise SipProtocolError(
            f"mcdatainfo request-type {kind!r} is not a standalone SDS.",
            status=488,
            reason="Not Acceptable Here",
        )
    return McdataUser(info.called_user or info.request_uri or McdataId(request_uri))


def decode_mcdata_request(
    request: SipRequest, adapter: str, *, now: float | None = None
) -> McdataSdsReceived | McdataNotificationReceived:
    """Decode the MCData content of a SIP MESSAGE into an adapter event.

    Args:
        request: The MESSAGE.
        adapter: Adapter name for the event.
        now: Arrival time (seconds since the epoch); default the current time.

    Raises:
        SipProtocolError: 415 for a body that is not MCData, 488 for a request type
            that is not a standalone SDS, 400 for anything malformed (the message
            names what).
    """
    parts = _split(request)
    try:
        info = decode_mcdata_info(parts.info.body)
        message = decode_sds_message(
            parts.signalling.body, None if parts.payload is None else parts.payload.body
        )
    except RemoteProtocolError as exc:
        raise SipProtocolError(f"Malformed MCData body: {exc}") from exc
    call_id = request.headers.get("Call-ID") or ""
    at = time.time() if now is None else now
    if isinstance(message, SdsNotification):
        sender = info.calling_user or message.sender
        if sender is None:
            raise SipProtocolError("SDS NOTIFICATION names no sender.")
        recipient = info.called_user or info.request_uri or McdataId(request.uri)
        return McdataNotificationReceived(
            adapter=adapter,
            sender=sender,
            recipient=recipient,
            notification=message,
            info=info,
            call_id=call_id,
            received_at=at,
        )
    sender = info.calling_user or message.signalling.sender
    if sender is None:
        raise SipProtocolError("MCData SDS names no sender (no calling user ID).")
    return McdataSdsReceived(
        adapter=adapter,
        sender=sender,
        target=_target(info, request.uri),
        signalling=message.signalling,
        payloads=message.data.payloads,
        info=info,
        emergency=bool(info.emergency),
        alert=bool(info.alert),
        imminent_peril=bool(info.imminent_peril),
        call_id=call_id,
        received_at=at,
    )


def message_ids(message: SdsMessage | SdsNotification) -> tuple[uuid.UUID, uuid.UUID]:
    """Return (message ID, conversation ID) of an SDS or of the SDS a notification is about."""
    if isinstance(message, SdsNotification):
        return message.message_id, message.conversation_id
    return message.signalling.message_id, message.signalling.conversation_id


def send_outcome(
    request: SipRequest,
    message: SdsMessage | SdsNotification,
    response: SipResponse | None,
    timeout: float,
) -> McdataSendOutcome:
    """Return the outcome of a MESSAGE from its final response (None: timed out)."""
    message_id, conversation_id = message_ids(message)
    call_id = request.headers.get("Call-ID") or ""
    if response is None:
        return McdataSendOutcome(
            ok=False,
            status=None,
            reason=f"no final response within {timeout}s",
            call_id=call_id,
            message_id=message_id,
            conversation_id=conversation_id,
        )
    ok = 200 <= response.status < 300
    return McdataSendOutcome(
        ok=ok,
        status=response.status,
        reason="" if ok else response_text(response.status, response.reason, response.headers),
        call_id=call_id,
        message_id=message_id,
        conversation_id=conversation_id,
    )


def response_text(status: int, reason: str, headers: SipHeaders) -> str:
    """Return a response's reason phrase with its Warning text, for outcomes and logs."""
    warning = headers.get("Warning")
    return f"{status} {reason}" + (f" ({warning})" if warning else "")
