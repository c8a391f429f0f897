"""Text coding schemes of SDS text messages (EN 300 392-2 29.5.4.3, table 29.29).

Rule 1: pure functions, no I/O. Rule 2: a coding Python cannot express (VISCII,
reserved values) is refused with a protocol error whose ``reason_code`` is
:attr:`DeliveryStatus.CODING_SCHEME_NOT_SUPPORTED` (0x51) and whose message
names the coding; it never crashes.
"""

from __future__ import annotations

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tetra._events import DeliveryStatus

__all__ = [
    "CODING_NAMES",
    "choose_coding_scheme",
    "decode_text",
    "encode_text",
    "text_bits",
]

# EN 300 392-2 table 29.29: text coding scheme -> Python codec.
_CODECS: dict[int, str] = {
    1: "iso8859_1",
    2: "iso8859_2",
    3: "iso8859_3",
    4: "iso8859_4",
    5: "iso8859_5",
    6: "iso8859_6",
    7: "iso8859_7",
    8: "iso8859_8",
    9: "iso8859_9",
    10: "iso8859_10",
    11: "iso8859_13",
    12: "iso8859_14",
    13: "iso8859_15",
    14: "cp437",
    15: "cp737",
    16: "cp850",
    17: "cp852",
    18: "cp855",
    19: "cp857",
    20: "cp860",
    21: "cp861",
    22: "cp863",
    23: "cp865",
    24: "cp866",
    25: "cp869",
    26: "utf_16_be",
}

#: Human-readable name of every coding scheme of table 29.29.
CODING_NAMES: dict[int, str] = {
    0: "7-bit (GSM 03.38) alphabet",
    **{k: v.upper().replace("ISO8859_", "ISO-8859-") for k, v in _CODECS.items()},
    26: "UCS-2 (ISO/IEC 10646-1, UTF-16BE)",
    27: "VISCII",
}

UCS2 = 26

# GSM 03.38 default alphabet (3GPP TS 23.038 6.2.1), index = septet value.
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table reached with the escape septet 0x1B (TS 23.038 6.2.1.1).
_GSM_EXT = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~"}
_GSM_EXT |= {0x3E: "]", 0x40: "|", 0x65: "€"}
_GSM_ESC = 0x1B
_GSM_ENCODE: dict[str, tuple[int, ...]] = {
    c: (i,) for i, c in enumerate(_GSM_BASIC) if i != _GSM_ESC
}
_GSM_ENCODE |= {c: (_GSM_ESC, i) for i, c in _GSM_EXT.items()}
assert len(_GSM_BASIC) == 128


def _unsupported(
    scheme: int, error: type[LocalProtocolError | RemoteProtocolError]
) -> LocalProtocolError | RemoteProtocolError:
    name = CODING_NAMES.get(scheme, "reserved")
    return error(
        f"Text coding scheme {scheme} ({name}) is not supported.",
        reason_code=DeliveryStatus.CODING_SCHEME_NOT_SUPPORTED,
    )


def _unpack_septets(data: bytes, count: int) -> list[int]:
    # Septets packed LSB first, as in GSM (3GPP TS 23.038 6.1.2.1.1).
    value = int.from_bytes(data, "little")
    return [(value >> (7 * i)) & 0x7F for i in range(count)]


def _decode_gsm(data: bytes, bits: int | None) -> str:
    if bits is None:
        count = len(data) * 8 // 7
        septets = _unpack_septets(data, count)
        if septets and septets[-1] == 0 and count * 7 > (len(data) - 1) * 8:
            septets.pop()  # padding bits of the last octet, not an '@'
    else:
        septets = _unpack_septets(data, bits // 7)
    out: list[str] = []
    escaped = False
    for septet in septets:
        if escaped:
            out.append(_GSM_EXT.get(septet, " "))
            escaped = False
        elif septet == _GSM_ESC:
            escaped = True
        else:
            out.append(_GSM_BASIC[septet])
    return "".join(out)


def _encode_gsm(text: str) -> tuple[bytes, int]:
    septets: list[int] = []
    for char in text:
        code = _GSM_ENCODE.get(char)
        if code is None:
            raise LocalProtocolError(
                f"Character {char!r} is not in the GSM 7-bit alphabet (coding scheme 0).",
                reason_code=DeliveryStatus.CODING_SCHEME_NOT_SUPPORTED,
            )
        septets.extend(code)
    value = 0
    for i, septet in enumerate(septets):
        value |= septet << (7 * i)
    bits = 7 * len(septets)
    return value.to_bytes((bits + 7) // 8, "little"), bits


def decode_text(data: bytes, scheme: int, bits: int | None = None) -> str:
    """Decode SDS text in coding ``scheme`` (table 29.29).

    Args:
        data: The text octets (left-aligned).
        scheme: The 7-bit text coding scheme.
        bits: Number of valid bits in ``data``; None means all of it. Bits that do
            not make a whole character are ignored.

    Raises:
        RemoteProtocolError: Unsupported coding (reason 0x51) or invalid text.
    """
    if scheme == 0:
        return _decode_gsm(data, bits)
    codec = _CODECS.get(scheme)
    if codec is None:
        raise _unsupported(scheme, RemoteProtocolError)
    unit = 2 if scheme == UCS2 else 1
    count = len(data) if bits is None else min(len(data), bits // 8)
    count -= count % unit
    try:
        return data[:count].decode(codec)
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(
            f"Text is not valid {CODING_NAMES[scheme]} (coding scheme {scheme}): {exc.reason}.",
            reason_code=DeliveryStatus.CORRUPT_INFORMATION_ELEMENT,
        ) from exc


def encode_text(text: str, scheme: int) -> tuple[bytes, int]:
    """Encode ``text`` in coding ``scheme``; return the octets and the length in bits.

    Raises:
        LocalProtocolError: Unsupported coding (reason 0x51) or a character the
            coding cannot express.
    """
    if scheme == 0:
        return _encode_gsm(text)
    codec = _CODECS.get(scheme)
    if codec is None:
        raise _unsupported(scheme, LocalProtocolError)
    try:
        data = text.encode(codec)
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(
            f"Text cannot be encoded in {CODING_NAMES[scheme]} (coding scheme {scheme}):"
            f" {exc.reason}.",
            reason_code=DeliveryStatus.CODING_SCHEME_NOT_SUPPORTED,
        ) from exc
    return data, len(data) * 8


def text_bits(text: str, scheme: int) -> int:
    """Return how many bits ``text`` takes in coding ``scheme``."""
    return encode_text(text, scheme)[1]


def choose_coding_scheme(text: str) -> int:
    """Pick the coding for ``text``: ISO-8859-1 if possible, else ISO-8859-15, else UCS-2."""
    for scheme in (1, 13):
        try:
            text.encode(_CODECS[scheme])
        except UnicodeEncodeError:
            continue
        return scheme
    return UCS2
