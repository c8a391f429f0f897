"""Fuzz the MCData SDS decoders (TS 24.282 clause 15 binary messages, mcdatainfo XML).

Seeds are the encoders' output for messages using every IE; a decoder returns a message
or raises :class:`RemoteProtocolError`, nothing else.
"""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import RemoteProtocolError
from protocols.mcdata import (
    ContentType,
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
    decode_data_payload,
    decode_mcdata_info,
    decode_notification,
    decode_sds_message,
    decode_signalling,
    encode_data_payload,
    encode_mcdata_info,
    encode_notification,
    encode_signalling,
)
from tests.fuzz._fuzz import Tally, fuzz_settings, mutated

_CONVERSATION = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
_MESSAGE = uuid.UUID("ffeeddcc-bbaa-9988-7766-554433221100")

SIGNALLING = [
    encode_signalling(
        SdsSignalling(date_time=3_900_000_000, conversation_id=_CONVERSATION, message_id=_MESSAGE)
    ),
    encode_signalling(
        SdsSignalling(
            date_time=3_900_000_001,
            conversation_id=_CONVERSATION,
            message_id=_MESSAGE,
            in_reply_to=uuid.UUID(int=7),
            application_id=9,
            disposition_request=DispositionRequest.DELIVERY_AND_READ,
            extended_application_id=b"ext-app",
            user_location=b"\x01\x02\x03",
            sender=McdataId("sip:alice@mcx.be"),
            application_metadata=b"meta",
        )
    ),
]
PAYLOADS = [
    encode_data_payload(DataPayload(payloads=(Payload.from_text("Hallo Kehl"),))),
    encode_data_payload(
        DataPayload(
            payloads=(
                Payload.from_text("https://x.example", ContentType.HYPERLINKS),
                Payload(content_type=ContentType.BINARY, data=bytes(range(40))),
                Payload(content_type=ContentType.LOCATION, data=b"\x00\xff"),
            )
        )
    ),
]
NOTIFICATIONS = [
    encode_notification(
        SdsNotification(
            notification=NotificationType.DELIVERED,
            date_time=3_900_000_002,
            conversation_id=_CONVERSATION,
            message_id=_MESSAGE,
            application_id=1,
            extended_application_id=b"x",
            sender=McdataId("sips:bob@mcx.fr"),
        )
    ),
]
BINARY = SIGNALLING + PAYLOADS + NOTIFICATIONS
BINARY_TOKENS = (b"\x01", b"\x03", b"\x05", b"\x21", b"\x22", b"\x51\x00\x00", b"\xff\xff", b"\x00")

XML = [
    encode_mcdata_info(
        McdataInfo(
            request_type=RequestType.ONE_TO_ONE_SDS,
            calling_user=McdataId("sip:alice@mcx.be"),
            called_user=McdataId("sip:bob@iwf.mcx.example"),
            request_uri=McdataId("sip:bob@iwf.mcx.example"),
            emergency=True,
            alert=False,
            imminent_peril=False,
        )
    ),
    encode_mcdata_info(
        McdataInfo(
            request_type=RequestType.GROUP_SDS,
            calling_user=McdataId("sip:a&b<c>@mcx.be"),
            group=McdataId("sip:xb.rhine@mcx.be"),
        )
    ),
]
XML_TOKENS = (
    b"<",
    b">",
    b"</",
    b"/>",
    b"&amp;",
    b"&#0;",
    b"&#x1F;",
    b"&lt;",
    b"&bogus;",
    b"<!DOCTYPE x>",
    b"<! ENTITY",
    b"<![CDATA[ x ]]>",
    b"<?pi x?>",
    b"<!-- c -->",
    b"\xef\xbb\xbf",
    b"<mcdataBoolean>true</mcdataBoolean>",
    b"<mcdataURI>sip:x@y</mcdataURI>",
    b"<request-type>",
    b'xmlns="urn:x"',
    b"\xc3\x28",
    b"\x00",
    b" \t\r\n",
)


def test_binary_decoders() -> None:
    tally = Tally()
    decoders = (decode_signalling, decode_data_payload, decode_notification)

    @fuzz_settings
    @given(
        mutated(BINARY, BINARY_TOKENS, max_size=1024),
        st.none() | mutated(PAYLOADS, BINARY_TOKENS, max_size=1024),
    )
    def run(message: bytes, data: bytes | None) -> None:
        for decode in decoders:
            try:
                decoded = decode(message)
            except RemoteProtocolError as exc:
                tally.refused(exc)
            else:
                assert isinstance(decoded, SdsSignalling | DataPayload | SdsNotification)
                tally("decoded")
        try:
            sds = decode_sds_message(message, data)
        except RemoteProtocolError as exc:
            tally.refused(exc)
        else:
            assert isinstance(sds, SdsMessage | SdsNotification)
            tally("sds_message")

    run()
    tally.expect("decoded", "refused", "sds_message")


def test_decode_mcdata_info() -> None:
    tally = Tally()

    @fuzz_settings
    @given(mutated(XML, XML_TOKENS, max_size=2048))
    def run(body: bytes) -> None:
        try:
            info = decode_mcdata_info(body)
        except RemoteProtocolError as exc:
            tally.refused(exc)
        else:
            assert isinstance(info, McdataInfo)
            tally("decoded")

    run()
    tally.expect("decoded", "refused")
