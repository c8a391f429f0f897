from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tetra import CODING_NAMES, choose_coding_scheme, decode_text, encode_text
from protocols.tetra._text import _CODECS, _GSM_BASIC, _GSM_EXT, text_bits

GSM_CHARS = "".join(c for c in _GSM_BASIC if c != "\x1b") + "".join(_GSM_EXT.values())


@given(st.text(alphabet=GSM_CHARS))
def test_gsm_round_trip(text: str) -> None:
    data, bits = encode_text(text, 0)
    assert bits == 7 * sum(2 if c in _GSM_EXT.values() else 1 for c in text)
    assert decode_text(data, 0, bits) == text


@pytest.mark.parametrize("scheme", sorted(_CODECS))
@given(data=st.data())
def test_eight_bit_and_ucs2_round_trip(scheme: int, data: st.DataObject) -> None:
    raw = data.draw(st.binary(max_size=40))
    try:
        text = decode_text(raw, scheme)
    except RemoteProtocolError:
        return
    encoded, bits = encode_text(text, scheme)
    assert decode_text(encoded, scheme, bits) == text
    assert bits == len(encoded) * 8


def test_gsm_known_packing() -> None:
    assert encode_text("hello", 0) == (bytes.fromhex("e8329bfd06"), 35)
    assert decode_text(bytes.fromhex("e8329bfd06"), 0) == "hello"


def test_gsm_bits_none_keeps_real_at_sign() -> None:
    data, bits = encode_text("abcdefg", 0)  # 49 bits in 7 octets: 7 padding bits
    assert decode_text(data, 0) == "abcdefg"
    data, bits = encode_text("abcdefg@", 0)  # 56 bits: the final '@' is real
    assert decode_text(data, 0, bits) == "abcdefg@"


def test_gsm_unknown_escape_is_space_and_bad_char_refused() -> None:
    assert decode_text(bytes([0x1B | (0x01 << 7) & 0xFF, 0x00]), 0, 14) == " "
    with pytest.raises(LocalProtocolError) as info:
        encode_text("日本", 0)
    assert info.value.reason_code == 0x51


@pytest.mark.parametrize("scheme", [27, 28, 127])
def test_unsupported_codings_named(scheme: int) -> None:
    with pytest.raises(RemoteProtocolError, match=f"coding scheme {scheme}") as info:
        decode_text(b"abc", scheme)
    assert info.value.reason_code == 0x51
    with pytest.raises(LocalProtocolError, match="coding scheme") as linfo:
        encode_text("abc", scheme)
    assert linfo.value.reason_code == 0x51
    assert "VISCII" in CODING_NAMES[27]


def test_invalid_bytes_and_unencodable() -> None:
    with pytest.raises(RemoteProtocolError, match="ISO-8859-3"):
        decode_text(b"\xa5", 3)
    with pytest.raises(LocalProtocolError, match="coding scheme 1"):
        encode_text("€", 1)


def test_partial_units_ignored() -> None:
    assert decode_text("Aé".encode("utf-16-be") + b"\x00", 26) == "Aé"
    assert decode_text(b"abcd", 1, bits=20) == "ab"


@pytest.mark.parametrize(
    ("text", "scheme"), [("hello", 1), ("café", 1), ("€uro", 13), ("Ωμέγα", 26), ("", 1)]
)
def test_choose_coding_scheme(text: str, scheme: int) -> None:
    assert choose_coding_scheme(text) == scheme
    assert text_bits(text, scheme) == len(encode_text(text, scheme)[0]) * 8
