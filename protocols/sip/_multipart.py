"""``multipart/mixed`` bodies (RFC 2046 §5.1), binary-safe, as MCData SIP MESSAGEs carry them.

Parsing: the body is split at delimiter lines ``CRLF "--" boundary`` (the first may open
the body without the CRLF); a delimiter is followed by optional blanks and CRLF, or by
``--`` for the close delimiter. The preamble and epilogue are ignored. Each part is
header lines, an empty line, then its octets. A line that merely starts with the
delimiter but continues otherwise is not a delimiter.

Encoding writes each part's Content-Type first, then its other fields, and refuses a
boundary that occurs inside a part. No I/O; the boundary is an argument
(:func:`make_boundary` derives one from a caller-supplied ``randbits``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from protocols.errors import LocalProtocolError
from protocols.sip._headers import (
    TOKEN,
    SipHeaders,
    SipProtocolError,
    parse_header_lines,
    parse_media_type,
)
from protocols.sip._messages import RandomBits

__all__ = [
    "DEFAULT_PART_TYPE",
    "BodyPart",
    "encode_multipart",
    "find_part",
    "make_boundary",
    "parse_multipart",
]

#: RFC 2046 §5.1: a part without Content-Type is plain US-ASCII text.
DEFAULT_PART_TYPE = "text/plain"

#: RFC 2046 §5.1.1 bchars: 1-70 of them, the last not a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_PADDING = re.compile(rb"[ \t]*\r\n")
_BARE = re.compile(r"\r(?!\n)|(?<!\r)\n")


@dataclass(frozen=True, kw_only=True)
class BodyPart:
    """One body part: its Content-Type, other part header fields, and its octets."""

    content_type: str
    body: bytes
    headers: SipHeaders = field(default_factory=SipHeaders)

    def __post_init__(self) -> None:
        if "Content-Type" in self.headers:
            raise LocalProtocolError("Give a part's Content-Type as content_type, not a header.")
        SipHeaders([("Content-Type", self.content_type)])  # validates the value

    @property
    def media_type(self) -> str:
        """The lower-case ``type/subtype`` of the part (parameters dropped)."""
        return self.content_type.partition(";")[0].strip().lower()


def make_boundary(randbits: RandomBits) -> str:
    """Return a fresh boundary from 96 random bits."""
    return f"euccs-{randbits(96):024x}"


def _boundary_of(content_type: str) -> str:
    media_type, params = parse_media_type(content_type)
    if not media_type.startswith("multipart/"):
        raise SipProtocolError(
            f"Body of type {media_type} is not multipart.",
            status=415,
            reason="Unsupported Media Type",
        )
    boundary = params.get("boundary")
    if boundary is None or not _BOUNDARY.fullmatch(boundary):
        raise SipProtocolError(f"Multipart body has a missing or invalid boundary {boundary!r}.")
    return boundary


def parse_multipart(content_type: str, body: bytes) -> tuple[BodyPart, ...]:
    """Split a multipart body into its parts.

    Args:
        content_type: The message's Content-Type value (must carry ``boundary``).
        body: The message body.

    Raises:
        SipProtocolError: 415 when the type is not multipart; 400 when the boundary is
            missing or invalid, the body has no part or no close delimiter, or a part's
            header is malformed.
    """
    delimiter = b"--" + _boundary_of(content_type).encode("ascii")
    first = body.startswith(delimiter) and _is_delimiter(body, len(delimiter))
    position = 0 if first else _find(body, b"\r\n" + delimiter, 0) + 2
    parts: list[BodyPart] = []
    while True:
        position += len(delimiter)
        if body[position : position + 2] == b"--":
            break
        padding = _PADDING.match(body, position)
        assert padding is not None  # _find and _is_delimiter only accept real delimiter lines
        start = padding.end()
        end = _find(body, b"\r\n" + delimiter, start)
        parts.append(_part(body[start:end], len(parts) + 1))
        position = end + 2
    if not parts:
        raise SipProtocolError("Multipart body has no part.")
    return tuple(parts)


def _find(body: bytes, needle: bytes, start: int) -> int:
    """Return the index of the next real delimiter line (followed by blanks+CRLF or --)."""
    while True:
        index = body.find(needle, start)
        if index < 0:
            raise SipProtocolError("Multipart body has no close delimiter.")
        if _is_delimiter(body, index + len(needle)):
            return index
        start = index + 1


def _is_delimiter(body: bytes, after: int) -> bool:
    return body[after : after + 2] == b"--" or _PADDING.match(body, after) is not None


def _part(raw: bytes, number: int) -> BodyPart:
    # RFC 2046 §5.1.1: body-part := MIME-part-headers [CRLF *OCTET]; both may be empty.
    if raw.startswith(b"\r\n"):
        head, content = b"", raw[2:]
    else:
        head, separator, content = raw.partition(b"\r\n\r\n")
        if not separator:
            if raw and not raw.endswith(b"\r\n"):
                raise SipProtocolError(f"Multipart part {number} header is not terminated.")
            head, content = raw[:-2], b""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipProtocolError(f"Multipart part {number} header is not UTF-8.") from exc
    if _BARE.search(text):
        raise SipProtocolError(f"Multipart part {number} header has a bare CR or LF.")
    headers = parse_header_lines(text.split("\r\n") if text else [], f"Part {number}")
    types = headers.get_all("Content-Type")
    if len(types) > 1:
        raise SipProtocolError(f"Multipart part {number} has {len(types)} Content-Types.")
    content_type = types[0] if types else DEFAULT_PART_TYPE
    parse_media_type(content_type)
    return BodyPart(
        content_type=content_type, body=content, headers=headers.without("Content-Type")
    )


def _quote(boundary: str) -> str:
    return boundary if TOKEN.fullmatch(boundary) else f'"{boundary}"'


def encode_multipart(
    parts: Iterable[BodyPart], boundary: str, subtype: str = "mixed"
) -> tuple[str, bytes]:
    """Encode parts as a multipart body.

    Args:
        parts: At least one part.
        boundary: The boundary (1-70 RFC 2046 bchars; see :func:`make_boundary`).
        subtype: Multipart subtype.

    Returns:
        The Content-Type value (with the boundary parameter) and the body.

    Raises:
        LocalProtocolError: No parts, an invalid boundary or subtype, or a part that
            contains the boundary.
    """
    if not _BOUNDARY.fullmatch(boundary) or not TOKEN.fullmatch(subtype):
        raise LocalProtocolError(f"Invalid multipart boundary {boundary!r} or subtype.")
    delimiter = b"--" + boundary.encode("ascii")
    out = bytearray()
    for part in parts:
        fields = [("Content-Type", part.content_type), *part.headers]
        head = "".join(f"{name}: {value}\r\n" for name, value in fields).encode("utf-8")
        content = head + b"\r\n" + part.body
        if delimiter in content:
            raise LocalProtocolError(f"Boundary {boundary!r} occurs inside a part.")
        out += delimiter + b"\r\n" + content + b"\r\n"
    if not out:
        raise LocalProtocolError("A multipart body needs at least one part.")
    out += delimiter + b"--\r\n"
    return f"multipart/{subtype};boundary={_quote(boundary)}", bytes(out)


def find_part(parts: Iterable[BodyPart], media_type: str) -> BodyPart | None:
    """Return the first part of ``media_type`` (compared without parameters), or None."""
    wanted = media_type.lower()
    return next((part for part in parts if part.media_type == wanted), None)
