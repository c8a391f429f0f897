"""The ``application/vnd.3gpp.mcdata-info+xml`` body (TS 24.282 Annex D.1, ``mcdatainfo``).

Only the elements an SDS needs are read; others (``<anyExt>``, extensions) are ignored.
Each identity is an element holding one ``<mcdataURI>``; each indicator an element
holding one ``<mcdataBoolean>``. Element names follow TS 24.282 Annex D.1 as used by
ethanxdd/MCDataIWF (``request-type``, ``mcdata-calling-user-id``, ``mcdata-request-uri``,
``mcdata-calling-group-id``); ``mcdata-called-party-id``, ``emergency-ind``, ``alert-ind``
and ``imminentperil-ind`` are **inferred** from the MCPTT ``mcpttinfo`` schema of TS 24.379.

Safety: the body must be UTF-8 and may not contain a DOCTYPE or an entity declaration
(``defusedxml`` is not available, so anything that could expand entities is refused
before parsing). Elements are matched by local name, with or without the namespace.
The encoder writes a fixed layout, so equal values give equal bytes. No I/O.
"""

from __future__ import annotations

import enum
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.mcdata._messages import McdataId

__all__ = [
    "MCDATA_INFO_NAMESPACE",
    "McdataInfo",
    "RequestType",
    "decode_mcdata_info",
    "encode_mcdata_info",
]

#: XML namespace of the mcdatainfo document (TS 24.282 Annex D.1).
MCDATA_INFO_NAMESPACE = "urn:3gpp:ns:mcdataInfo:1.0"

_FORBIDDEN = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_CHAR = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
_ID_ELEMENTS = {
    "calling_user": "mcdata-calling-user-id",
    "called_user": "mcdata-called-party-id",
    "request_uri": "mcdata-request-uri",
    "group": "mcdata-calling-group-id",
}
_FLAG_ELEMENTS = {
    "emergency": "emergency-ind",
    "alert": "alert-ind",
    "imminent_peril": "imminentperil-ind",
}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class RequestType(enum.StrEnum):
    """``<request-type>`` values for MCData (TS 24.282 Annex D.1); others stay ``str``."""

    #: One-to-one standalone SDS.
    ONE_TO_ONE_SDS = "one-to-one-sds"
    #: Group standalone SDS.
    GROUP_SDS = "group-sds"
    #: One-to-one file distribution.
    ONE_TO_ONE_FD = "one-to-one-fd"
    #: Group file distribution.
    GROUP_FD = "group-fd"


def _check_text(value: str, name: str) -> None:
    if not value or value != value.strip() or not _XML_CHAR.fullmatch(value):
        raise LocalProtocolError(f"{name}={value!r} cannot be carried in mcdatainfo.")


@dataclass(frozen=True, kw_only=True)
class McdataInfo:
    """The SDS-relevant content of an mcdatainfo body.

    Attributes:
        request_type: ``<request-type>`` (unknown values stay ``str``).
        calling_user: ``<mcdata-calling-user-id>``: the sender.
        called_user: ``<mcdata-called-party-id>``: the one-to-one recipient.
        request_uri: ``<mcdata-request-uri>``: the target user or group of a request.
        group: ``<mcdata-calling-group-id>``: the MCData group of a group SDS.
        emergency: ``<emergency-ind>``.
        alert: ``<alert-ind>`` (emergency alert).
        imminent_peril: ``<imminentperil-ind>``.
    """

    request_type: RequestType | str | None = None
    calling_user: McdataId | None = None
    called_user: McdataId | None = None
    request_uri: McdataId | None = None
    group: McdataId | None = None
    emergency: bool | None = None
    alert: bool | None = None
    imminent_peril: bool | None = None

    def __post_init__(self) -> None:
        if self.request_type is not None:
            _check_text(self.request_type, "request_type")
        for attribute in _ID_ELEMENTS:
            value = getattr(self, attribute)
            if value is not None:
                _check_text(value, attribute)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _parse(body: bytes) -> ET.Element:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"mcdatainfo body is not UTF-8: {exc.reason}.") from exc
    if _FORBIDDEN.search(text):
        raise RemoteProtocolError("mcdatainfo body contains a DOCTYPE or ENTITY; refused.")
    try:
        return ET.fromstring(text)  # noqa: S314 - no DTD can reach the parser (see above)
    except ET.ParseError as exc:
        raise RemoteProtocolError(f"mcdatainfo body is not well-formed XML: {exc}.") from exc


def _child(parent: ET.Element, name: str) -> ET.Element | None:
    found = [element for element in parent if _local(element.tag) == name]
    if len(found) > 1:
        raise RemoteProtocolError(f"mcdatainfo has {len(found)} <{name}> elements.")
    return found[0] if found else None


def _text(element: ET.Element | None, name: str) -> str | None:
    if element is None:
        return None
    value = "".join(element.itertext()).strip()
    if not value:
        raise RemoteProtocolError(f"mcdatainfo <{name}> is empty.")
    return value


def _flag(params: ET.Element, name: str) -> bool | None:
    element = _child(params, name)
    if element is None:
        return None
    text = _text(_child(element, "mcdataBoolean"), f"{name}/mcdataBoolean")
    if text is None or text not in _BOOLEANS:
        raise RemoteProtocolError(f"mcdatainfo <{name}> is not a boolean: {text!r}.")
    return _BOOLEANS[text]


def _identity(params: ET.Element, name: str) -> McdataId | None:
    element = _child(params, name)
    if element is None:
        return None
    text = _text(_child(element, "mcdataURI"), f"{name}/mcdataURI")
    if text is None:
        raise RemoteProtocolError(f"mcdatainfo <{name}> has no <mcdataURI>.")
    return McdataId(text)


def decode_mcdata_info(body: bytes) -> McdataInfo:
    """Decode an ``application/vnd.3gpp.mcdata-info+xml`` body.

    Raises:
        RemoteProtocolError: Not UTF-8, a DOCTYPE or ENTITY, not well-formed, wrong
            root, or an element that is repeated, empty or of the wrong type.
    """
    root = _parse(body)
    if _local(root.tag) != "mcdatainfo":
        raise RemoteProtocolError(f"mcdatainfo body has root <{_local(root.tag)}>.")
    params = _child(root, "mcdata-Params")
    if params is None:
        raise RemoteProtocolError("mcdatainfo body has no <mcdata-Params>.")
    request = _text(_child(params, "request-type"), "request-type")
    ids = {attribute: _identity(params, name) for attribute, name in _ID_ELEMENTS.items()}
    flags = {attribute: _flag(params, name) for attribute, name in _FLAG_ELEMENTS.items()}
    # Text from a well-formed document is XML characters and is stripped above, so the
    # McdataInfo checks cannot fail here.
    return McdataInfo(
        request_type=None if request is None else _request_type(request),
        calling_user=ids["calling_user"],
        called_user=ids["called_user"],
        request_uri=ids["request_uri"],
        group=ids["group"],
        emergency=flags["emergency"],
        alert=flags["alert"],
        imminent_peril=flags["imminent_peril"],
    )


def _request_type(value: str) -> RequestType | str:
    try:
        return RequestType(value)
    except ValueError:
        return value


def _escape(value: str) -> str:
    return "".join(_ESCAPES.get(char, char) for char in value)


def encode_mcdata_info(info: McdataInfo) -> bytes:
    """Encode an mcdatainfo body deterministically (UTF-8, fixed element order)."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<mcdatainfo xmlns="{MCDATA_INFO_NAMESPACE}">',
        "<mcdata-Params>",
    ]
    if info.request_type is not None:
        lines.append(f"<request-type>{_escape(info.request_type)}</request-type>")
    for attribute, name in _ID_ELEMENTS.items():
        value = getattr(info, attribute)
        if value is not None:
            lines.append(f"<{name}><mcdataURI>{_escape(value)}</mcdataURI></{name}>")
    for attribute, name in _FLAG_ELEMENTS.items():
        flag = getattr(info, attribute)
        if flag is not None:
            lines.append(f"<{name}><mcdataBoolean>{str(flag).lower()}</mcdataBoolean></{name}>")
    lines += ["</mcdata-Params>", "</mcdatainfo>", ""]
    return "\n".join(lines).encode("utf-8")
