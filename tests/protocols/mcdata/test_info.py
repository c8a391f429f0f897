from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.mcdata import (
    MCDATA_INFO_NAMESPACE,
    McdataId,
    McdataInfo,
    RequestType,
    decode_mcdata_info,
    encode_mcdata_info,
)

# The shape of a received one-to-one SDS mcdatainfo (TS 24.282 Annex D.1), pretty-printed,
# with an unknown extension element that must be ignored.
RECEIVED = f"""<?xml version="1.0" encoding="UTF-8"?>
<mcdatainfo xmlns="{MCDATA_INFO_NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <mcdata-Params>
    <request-type>one-to-one-sds</request-type>
    <mcdata-calling-user-id>
      <mcdataURI> sip:alice@mcx.example.eu </mcdataURI>
    </mcdata-calling-user-id>
    <mcdata-called-party-id><mcdataURI>sip:bob@mcx.example.de</mcdataURI></mcdata-called-party-id>
    <emergency-ind><mcdataBoolean>1</mcdataBoolean></emergency-ind>
    <alert-ind><mcdataBoolean>false</mcdataBoolean></alert-ind>
    <anyExt><something>ignored</something></anyExt>
  </mcdata-Params>
</mcdatainfo>
""".encode()

xml_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="\ufffe\uffff")
    | st.sampled_from("\t\r\n<>&\"'"),
    min_size=1,
    max_size=30,
).filter(lambda s: s == s.strip())


@st.composite
def infos(draw: st.DrawFn) -> McdataInfo:
    ident = st.none() | xml_text.map(McdataId)
    flag = st.none() | st.booleans()
    return McdataInfo(
        request_type=draw(st.none() | st.sampled_from(RequestType) | xml_text),
        calling_user=draw(ident),
        called_user=draw(ident),
        request_uri=draw(ident),
        group=draw(ident),
        emergency=draw(flag),
        alert=draw(flag),
        imminent_peril=draw(flag),
    )


def test_received_body() -> None:
    info = decode_mcdata_info(RECEIVED)
    assert info == McdataInfo(
        request_type=RequestType.ONE_TO_ONE_SDS,
        calling_user=McdataId("sip:alice@mcx.example.eu"),
        called_user=McdataId("sip:bob@mcx.example.de"),
        emergency=True,
        alert=False,
    )
    assert info.request_type is RequestType.ONE_TO_ONE_SDS


def test_group_body_without_namespace_and_with_bom() -> None:
    body = (
        "\ufeff<mcdatainfo><mcdata-Params><request-type>group-sds</request-type>"
        "<mcdata-request-uri type='Normal'><mcdataURI>sip:grp@x</mcdataURI></mcdata-request-uri>"
        "<mcdata-calling-group-id><mcdataURI>sip:grp@x</mcdataURI></mcdata-calling-group-id>"
        "<imminentperil-ind><mcdataBoolean>true</mcdataBoolean></imminentperil-ind>"
        "<request-type-x>new</request-type-x>"
        "</mcdata-Params></mcdatainfo>"
    ).encode()
    info = decode_mcdata_info(body)
    assert info.group == "sip:grp@x" and info.request_uri == "sip:grp@x"
    assert info.imminent_peril is True and info.emergency is None
    assert decode_mcdata_info(b"<mcdatainfo><mcdata-Params/></mcdatainfo>") == McdataInfo()


def test_encoding_is_deterministic_and_escaped() -> None:
    info = McdataInfo(
        request_type="x-new<&>",
        calling_user=McdataId("sip:a&b@x"),
        emergency=False,
    )
    body = encode_mcdata_info(info)
    assert body == encode_mcdata_info(info)
    assert b"<request-type>x-new&lt;&amp;&gt;</request-type>" in body
    assert b"<emergency-ind><mcdataBoolean>false</mcdataBoolean></emergency-ind>" in body
    decoded = decode_mcdata_info(body)
    assert decoded == info and decoded.request_type == "x-new<&>"


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x "y">]><mcdatainfo>&x;</mcdatainfo>',
        b'<!DOCTYPE mcdatainfo SYSTEM "file:///etc/passwd"><mcdatainfo/>',
        b"<!doctype mcdatainfo><mcdatainfo/>",
        b"<mcdatainfo><!ENTITY a 'b'></mcdatainfo>",
        b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>',
    ],
)
def test_doctype_and_entities_refused(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="DOCTYPE or ENTITY"):
        decode_mcdata_info(body)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"\xff\xfe<\x00", "not UTF-8"),
        (b"<mcdatainfo>", "not well-formed"),
        (b"<other/>", "root <other>"),
        (b"<mcdatainfo/>", "no <mcdata-Params>"),
        (b"<mcdatainfo><mcdata-Params/><mcdata-Params/></mcdatainfo>", "2 <mcdata-Params>"),
        (
            b"<mcdatainfo><mcdata-Params><request-type> </request-type>"
            b"</mcdata-Params></mcdatainfo>",
            "<request-type> is empty",
        ),
        (
            b"<mcdatainfo><mcdata-Params><alert-ind><mcdataBoolean>yes</mcdataBoolean>"
            b"</alert-ind></mcdata-Params></mcdatainfo>",
            "not a boolean: 'yes'",
        ),
        (
            b"<mcdatainfo><mcdata-Params><alert-ind/></mcdata-Params></mcdatainfo>",
            "not a boolean: None",
        ),
        (
            b"<mcdatainfo><mcdata-Params><mcdata-calling-user-id>sip:a@b"
            b"</mcdata-calling-user-id></mcdata-Params></mcdatainfo>",
            "has no <mcdataURI>",
        ),
        (
            b"<mcdatainfo><mcdata-Params><mcdata-calling-user-id><mcdataURI>a\xc2\x85b c"
            b"</mcdataURI></mcdata-calling-user-id></mcdata-Params></mcdatainfo>",
            None,
        ),
    ],
)
def test_malformed_bodies(body: bytes, match: str | None) -> None:
    if match is None:  # an identity with an inner NEL/space is accepted as is
        assert decode_mcdata_info(body).calling_user == "a\x85b c"
        return
    with pytest.raises(RemoteProtocolError, match=match):
        decode_mcdata_info(body)


def test_invalid_character_reference_refused() -> None:
    body = (
        b"<mcdatainfo><mcdata-Params><mcdata-calling-user-id><mcdataURI>a&#1;b"
        b"</mcdataURI></mcdata-calling-user-id></mcdata-Params></mcdatainfo>"
    )
    with pytest.raises(RemoteProtocolError, match="invalid character"):
        decode_mcdata_info(body)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"calling_user": ""},
        {"called_user": " x"},
        {"group": "a\x00"},
        {"request_type": "x\x01"},
        {"request_uri": "\ufffe"},
    ],
)
def test_invalid_info_is_local_error(kwargs: dict[str, str]) -> None:
    with pytest.raises(LocalProtocolError):
        McdataInfo(**kwargs)  # type: ignore[arg-type]


@given(infos())
def test_info_roundtrip(info: McdataInfo) -> None:
    body = encode_mcdata_info(info)
    assert decode_mcdata_info(body) == info


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(body: bytes) -> None:
    for wire in (b"<mcdatainfo><mcdata-Params>" + body, body):
        try:
            decoded = decode_mcdata_info(wire)
        except RemoteProtocolError as exc:
            assert str(exc), "a refusal must say why"
        else:
            assert decoded is not None


@given(infos())
def test_every_truncation_is_refused(info: McdataInfo) -> None:
    body = encode_mcdata_info(info)
    closing = body.rindex(b"</mcdatainfo>")
    for end in range(closing + 1):
        with pytest.raises(RemoteProtocolError):
            decode_mcdata_info(body[:end])
