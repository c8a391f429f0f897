"""SIP header fields (RFC 3261 §7.3, §20): names, compact forms, values, media types.

:class:`SipHeaders` is an immutable, ordered list of ``(name, value)`` pairs. Names are
canonicalised on construction: compact forms are expanded (RFC 3261 §7.3.3, e.g.
``l`` -> ``Content-Length``) and known names get their usual spelling (``call-id`` ->
``Call-ID``); unknown names keep theirs. Look-ups are case-insensitive. Values never
hold CR, LF or other control characters except HTAB, and have no surrounding blanks.

This module does no I/O. Errors in peer input are :class:`SipProtocolError` (a
:class:`~protocols.errors.RemoteProtocolError` carrying the SIP status to answer).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from protocols.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "COMPACT_FORMS",
    "SipHeaders",
    "SipProtocolError",
    "canonical_name",
    "parse_header_lines",
    "parse_media_type",
]

#: RFC 3261 §7.3.3 and the IANA SIP parameter registry: compact form -> full name.
COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
_KNOWN = {
    name.lower(): name
    for name in (
        *COMPACT_FORMS.values(),
        "Accept",
        "Allow",
        "Authorization",
        "Content-Disposition",
        "Content-ID",
        "Content-Transfer-Encoding",
        "CSeq",
        "Date",
        "Expires",
        "Max-Forwards",
        "MIME-Version",
        "P-Asserted-Identity",
        "P-Asserted-Service",
        "P-Preferred-Service",
        "Proxy-Authorization",
        "Record-Route",
        "Require",
        "Retry-After",
        "Route",
        "Server",
        "Timestamp",
        "Unsupported",
        "User-Agent",
        "Warning",
        "WWW-Authenticate",
    )
}
#: RFC 3261 §25.1 token.
TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MEDIA_TYPE = re.compile(r"\s*([A-Za-z0-9\-.!%*_+`'~]+)/([A-Za-z0-9\-.!%*_+`'~]+)\s*")
_PARAM = re.compile(
    r';\s*([A-Za-z0-9\-.!%*_+`\'~]+)\s*=\s*([A-Za-z0-9\-.!%*_+`\'~]+|"(?:[^"\\\r\n]|\\.)*")\s*'
)


class SipProtocolError(RemoteProtocolError):
    """A peer sent a malformed SIP message; ``status`` is the response to answer with.

    ``reason_code`` equals ``status``; ``reason`` is the standard reason phrase, safe to
    put in a status line. ``headers`` holds the message's header fields when they were
    parsed before the error was found, so that a response can be built from them.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        reason: str = "Bad Request",
        headers: SipHeaders | None = None,
    ) -> None:
        super().__init__(message, reason_code=status, reply_hint=reason)
        self.status = status
        self.reason = reason
        self.headers = headers


def canonical_name(name: str) -> str:
    """Return the canonical spelling of a header name (compact forms expanded)."""
    lower = name.lower()
    return COMPACT_FORMS.get(lower) or _KNOWN.get(lower, name)


def _check_field(name: str, value: str) -> None:
    if not TOKEN.fullmatch(name):
        raise LocalProtocolError(f"Header name {name!r} is not a token.")
    if _BAD_VALUE.search(value) or value != value.strip(" \t"):
        raise LocalProtocolError(f"Header {name} has an invalid value {value!r}.")


@dataclass(frozen=True, init=False)
class SipHeaders:
    """An immutable, ordered list of header fields with case-insensitive look-up.

    Args:
        fields: ``(name, value)`` pairs in wire order.

    Raises:
        LocalProtocolError: A name is not a token or a value holds a control character
            or surrounding blanks.
    """

    fields: tuple[tuple[str, str], ...]

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        canonical = tuple((canonical_name(name), value) for name, value in fields)
        for name, value in canonical:
            _check_field(name, value)
        object.__setattr__(self, "fields", canonical)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def get_all(self, name: str) -> tuple[str, ...]:
        """Return the values of every field called ``name``, in order."""
        wanted = canonical_name(name).lower()
        return tuple(value for key, value in self.fields if key.lower() == wanted)

    def get(self, name: str) -> str | None:
        """Return the value of the first field called ``name``, or None."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_list(self, name: str) -> tuple[str, ...]:
        """Return the comma-separated elements of all fields called ``name`` (e.g. Via).

        Commas inside double quotes or angle brackets do not split (RFC 3261 §7.3.1).
        """
        return tuple(item for value in self.get_all(name) for item in split_commas(value))

    def with_field(self, name: str, value: str) -> SipHeaders:
        """Return a copy with one more field at the end."""
        return SipHeaders((*self.fields, (name, value)))

    def without(self, name: str) -> SipHeaders:
        """Return a copy without the fields called ``name``."""
        wanted = canonical_name(name).lower()
        return SipHeaders(field for field in self.fields if field[0].lower() != wanted)


def split_commas(value: str) -> list[str]:
    """Split a header value at commas outside quotes and angle brackets."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    depth = 0
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in "<>":
            depth = 1 if char == "<" else 0
        elif char == "," and not quoted and not depth:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def parse_header_lines(lines: list[str], what: str) -> SipHeaders:
    """Parse header lines (without their CRLF), unfolding continuation lines.

    RFC 3261 §7.3.1: a line starting with SP or HTAB continues the previous field; the
    fold is equivalent to one SP. Whitespace may precede the colon (HCOLON).

    Raises:
        SipProtocolError: 400 for a malformed line.
    """
    fields: list[list[str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not fields:
                raise SipProtocolError(f"{what}: continuation line before the first header.")
            fields[-1][1] = (fields[-1][1] + " " + line.strip(" \t")).strip(" \t")
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not TOKEN.fullmatch(name):
            raise SipProtocolError(f"{what}: malformed header line {line[:80]!r}.")
        fields.append([name, value.strip(" \t")])
    try:
        return SipHeaders((name, value) for name, value in fields)
    except LocalProtocolError as exc:
        raise SipProtocolError(f"{what}: {exc}") from exc


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Parse a Content-Type value into ``type/subtype`` (lower case) and its parameters.

    Parameter names are lower-cased; quoted values are unquoted.

    Raises:
        SipProtocolError: 400 for a value that is not ``type/subtype *(;param=value)``.
    """
    match = _MEDIA_TYPE.match(value)
    if match is None:
        raise SipProtocolError(f"Malformed Content-Type {value[:80]!r}.")
    media_type = f"{match.group(1)}/{match.group(2)}".lower()
    params: dict[str, str] = {}
    position = match.end()
    while position < len(value):
        param = _PARAM.match(value, position)
        if param is None:
            raise SipProtocolError(f"Malformed Content-Type parameters in {value[:80]!r}.")
        raw = param.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[param.group(1).lower()] = raw
        position = param.end()
    return media_type, params
