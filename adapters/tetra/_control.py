"""HTTP control interface of the simulated TETRA network, for exercises and load tests.

:class:`TetraControl` lets a process outside the simulator (a load generator, an
exercise script, ``curl``) make field radios send and read what they received:

* ``GET /healthz``: ``{"status": "ok", "gateway_connected": bool, "radios": n}``.
* ``GET /radios``: the gateway radio's ISSI, the field radios and the groups.
* ``POST /radios/{issi}/sds``: the field radio sends one SDS. The JSON body has
  ``to`` (the addressed ISSI, e.g. a partner unit's alias) and exactly one of
  ``text`` (optionally ``report_request`` 0..3, default 1), ``status`` (0..65535),
  ``latitude`` with ``longitude`` (a LIP short report), or ``emergency: true``
  (a LIP report with reason 2 "emergency" when ``latitude``/``longitude`` are
  given, else the emergency status 0). ``wait`` (seconds, default 10; ``0`` or
  ``false``: answer on write) bounds how long a text that requests a report
  waits for the gateway's first SDS-TL report for it (0x21 "stored": custody).
  Statuses, locations and emergencies carry no message reference: they are
  answered once written to the gateway's PEI.
* ``GET /radios/{issi}/received?since=N`` and ``GET /radios/{issi}/reports?since=N``:
  what the field radio received (SDS, or SDS-TL reports), from index ``N`` on.
* ``POST /faults``: ``{"silent": bool}``, ``{"stalled": bool}``,
  ``{"drop_connection": true}``: network faults for outage exercises.

Errors are JSON ``{"error": code, "detail": text}``: 400 (``malformed_json``,
``invalid_body``, ``invalid_query``), 404 (``unknown_radio``, ``not_found``), 413
(``body_too_large``, above 64 KiB), 503 (``no_gateway``), 504 (``timeout``: no
report in time), 502 (``refused``: the gateway reported a failure). It never logs
message text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from adapters._control import (
    MAX_BODY_BYTES,
    ControlServer,
    Problem,
    integer,
    number,
    query_since,
    read_json_object,
)
from protocols.errors import LinkError
from protocols.tetra import SdsContent, SdsReport

if TYPE_CHECKING:
    from adapters.tetra.simulator import TetraNetworkSimulator  # noqa: F401 (base class argument)

__all__ = ["MAX_BODY_BYTES", "TetraControl"]

_log = structlog.get_logger(__name__)

_DEFAULT_WAIT = 10.0
_MAX_WAIT = 120.0
#: SDS-TL delivery statuses from 0x40 on are failures (EN 300 392-2 table 29.16).
_FIRST_FAILURE = 0x40
_LIP_REASON_EMERGENCY = 2
_STATUS_EMERGENCY = 0


def jsonable(value: Any) -> Any:
    """A JSON-compatible copy of a decoded SDS field (dataclasses, enums, bytes)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _wait(body: dict[str, Any]) -> float:
    value = body.get("wait", True)
    if value is False:
        return 0.0
    if value is True:
        return _DEFAULT_WAIT
    return number(body, "wait", 0, _MAX_WAIT)


_KINDS = ("text", "status", "latitude", "emergency")
_FIELDS = frozenset(
    {"to", "text", "status", "latitude", "longitude", "emergency", "report_request", "wait"}
)


class TetraControl(ControlServer["TetraNetworkSimulator"]):
    """The HTTP control server of one :class:`TetraNetworkSimulator`.

    Args:
        simulator: The simulated network it drives.
        host: Address to listen on (loopback by default: it has no authentication).
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    """

    _label = "tetra_sim_control"

    def _routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/healthz", self._healthz)
        router.add_get("/radios", self._radios)
        router.add_post("/radios/{issi}/sds", self._send)
        router.add_get("/radios/{issi}/received", self._received)
        router.add_get("/radios/{issi}/reports", self._reports)
        router.add_post("/faults", self._faults)

    # ------------------------------------------------------------------ handlers

    def _radio(self, request: web.Request) -> str:
        issi = request.match_info["issi"]
        if issi not in self.simulator.radios.units:
            raise Problem(404, "unknown_radio", f"{issi!r} is not a simulated field radio")
        return issi

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "gateway_connected": self.simulator.gateway_connected,
                "radios": len(self.simulator.radios.units),
            }
        )

    async def _radios(self, _request: web.Request) -> web.Response:
        sim = self.simulator
        return web.json_response(
            {
                "radio_issi": sim.radio_issi,
                "radios": [
                    {"issi": issi, "reachable": sim.radios.is_reachable(issi)}
                    for issi in sim.radios.units
                ],
                "groups": sim.groups,
            }
        )

    def _listing(
        self, request: web.Request, records: dict[str, list[tuple[str, SdsContent]]]
    ) -> web.Response:
        issi = self._radio(request)
        since = query_since(request)
        items = records.get(issi, [])
        messages = [
            {"index": index, "from": source, "type": type(content).__name__} | jsonable(content)
            for index, (source, content) in enumerate(items[since:], start=since)
        ]
        return web.json_response({"radio": issi, "count": len(items), "messages": messages})

    async def _received(self, request: web.Request) -> web.Response:
        return self._listing(request, self.simulator.received)

    async def _reports(self, request: web.Request) -> web.Response:
        return self._listing(request, self.simulator.reports)

    async def _faults(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        unknown = set(body) - {"silent", "stalled", "drop_connection"}
        if unknown or not body:
            raise Problem(
                400, "invalid_body", "expected silent, stalled and/or drop_connection (booleans)"
            )
        for name, value in body.items():
            if not isinstance(value, bool):
                raise Problem(400, "invalid_body", f"{name} must be a boolean")
        if "silent" in body:
            self.simulator.set_silent(body["silent"])
        if "stalled" in body:
            self.simulator.set_stalled(body["stalled"])
        if body.get("drop_connection"):
            self.simulator.drop_connection()
        _log.info("tetra_sim_control_fault", **body)
        return web.json_response({"applied": body})

    async def _send(self, request: web.Request) -> web.Response:
        issi = self._radio(request)
        body = await read_json_object(request)
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise Problem(400, "invalid_body", f"unknown field(s): {', '.join(unknown)}")
        to = body.get("to")
        if not isinstance(to, str) or not to.isdigit() or len(to) > 24:
            raise Problem(400, "invalid_body", "to must be an ISSI (digits)")
        kinds = [kind for kind in _KINDS if kind in body]
        if "emergency" in kinds:  # an emergency may carry the radio's position
            kinds = [kind for kind in kinds if kind != "latitude"]
        if len(kinds) != 1:
            raise Problem(
                400,
                "invalid_body",
                "exactly one of text, status, latitude/longitude and emergency is required",
            )
        wait = _wait(body)
        try:
            return await self._dispatch(issi, to, kinds[0], body, wait)
        except LinkError as exc:
            raise Problem(503, "no_gateway", str(exc)) from exc

    async def _dispatch(
        self, issi: str, to: str, kind: str, body: dict[str, Any], wait: float
    ) -> web.Response:
        sim = self.simulator
        answer: dict[str, Any] = {"radio": issi, "to": to, "kind": kind}
        if kind == "text":
            text = body["text"]
            if not isinstance(text, str) or not text:
                raise Problem(400, "invalid_body", "text must be a non-empty string")
            report_request = (
                integer(body, "report_request", 0, 3) if "report_request" in body else 1
            )
            before = len(sim.reports.get(issi, []))
            reference = await sim.send_text(issi, to, text, report_request=report_request)
            answer["reference"] = reference
            if wait > 0 and report_request:
                report = await self._await_report(issi, reference, before, wait)
                answer["custody"] = "reported"
                answer["delivery_status"] = int(report.delivery_status)
                if report.delivery_status >= _FIRST_FAILURE:
                    return web.json_response(
                        {
                            "error": "refused",
                            "detail": f"the gateway reported 0x{report.delivery_status:02X}",
                        }
                        | answer,
                        status=502,
                    )
            else:
                answer["custody"] = "written"
            return web.json_response(answer)
        if kind == "status":
            await sim.send_status(issi, to, integer(body, "status", 0, 0xFFFF))
        elif kind == "latitude":
            lat = number(body, "latitude", -90, 90)
            lon = number(body, "longitude", -180, 180)
            await sim.send_location(issi, to, lat, lon)
        else:
            if body["emergency"] is not True:
                raise Problem(400, "invalid_body", "emergency must be true")
            if "latitude" in body or "longitude" in body:
                lat = number(body, "latitude", -90, 90)
                lon = number(body, "longitude", -180, 180)
                await sim.send_location(issi, to, lat, lon, reason=_LIP_REASON_EMERGENCY)
            else:
                await sim.send_status(issi, to, _STATUS_EMERGENCY)
        answer["custody"] = "written"
        return web.json_response(answer)

    async def _await_report(self, issi: str, reference: int, before: int, wait: float) -> SdsReport:
        """The first SDS-TL report for ``reference`` the radio gets after index ``before``."""
        sim = self.simulator
        found: list[SdsReport] = []

        def arrived() -> bool:
            for _source, content in sim.reports.get(issi, [])[before:]:
                if isinstance(content, SdsReport) and content.message_reference == reference:
                    found.append(content)
                    return True
            return False

        try:
            async with asyncio.timeout(wait):
                await sim.wait_for(arrived)
        except TimeoutError as exc:
            raise Problem(
                504, "timeout", f"no SDS-TL report for reference {reference} within {wait:g} s"
            ) from exc
        return found[0]
