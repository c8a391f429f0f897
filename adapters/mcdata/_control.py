"""HTTP control interface of the simulated MCX system, for exercises and load tests.

:class:`McdataControl` lets a process outside the simulator (a load generator, an
exercise script, ``curl``) make MCData users send SDS and read what they received:

* ``GET /healthz``: ``{"status": "ok", "gateway_connected": bool, "users": n}``.
* ``GET /users``: the simulated users and groups.
* ``POST /users/{uri}/sds``: the user sends one standalone SDS. The JSON body has
  ``to`` (an MCData ID behind the gateway, e.g. ``sip:<unit>@<iwf domain>``, or a
  group) and exactly one of ``text``, ``status`` (an enhanced status value,
  0..65535), ``latitude`` with ``longitude`` (a LOCATION payload), or
  ``emergency: true`` (an emergency alert carrying the location when
  ``latitude``/``longitude`` are given, else ``text`` or the text ``EMERGENCY``).
  ``disposition`` (``none``, ``delivery``, ``read``, ``delivery_and_read``;
  default ``delivery`` for texts, ``none`` otherwise). The answer comes with the
  gateway's final SIP response: a 2xx means the gateway took custody.
* ``GET /users/{uri}/received?since=N`` and ``GET /users/{uri}/notifications?since=N``:
  what the user received (SDS, or disposition notifications), from index ``N`` on.
* ``POST /faults``: ``{"silent": bool}``, ``{"drop_connections": true}``: faults
  for outage exercises.

Errors are JSON ``{"error": code, "detail": text}``: 400 (``malformed_json``,
``invalid_body``, ``invalid_query``), 404 (``unknown_user``, ``not_found``), 413
(``body_too_large``, above 64 KiB), 502 (``refused``: the gateway answered with a
failure or not at all), 503 (``no_gateway``). It never logs message content.
"""

from __future__ import annotations

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
from protocols.errors import GatewayError
from protocols.mcdata import DispositionRequest

if TYPE_CHECKING:
    from adapters.mcdata._config import McdataNotificationReceived, McdataSdsReceived
    from adapters.mcdata.simulator import McdataSystemSimulator  # noqa: F401 (base class argument)

__all__ = ["MAX_BODY_BYTES", "McdataControl"]

_log = structlog.get_logger(__name__)

_EMERGENCY_TEXT = "EMERGENCY"
_DISPOSITIONS = {
    "none": DispositionRequest.NONE,
    "delivery": DispositionRequest.DELIVERY,
    "read": DispositionRequest.READ,
    "delivery_and_read": DispositionRequest.DELIVERY_AND_READ,
}
_KINDS = ("text", "status", "latitude", "emergency")
_FIELDS = frozenset(
    {"to", "text", "status", "latitude", "longitude", "emergency", "disposition", "group"}
)


def _sds_json(index: int, sds: McdataSdsReceived) -> dict[str, Any]:
    return {
        "index": index,
        "from": str(sds.sender),
        "target": str(sds.target.id),
        "message_id": str(sds.message_id),
        "conversation_id": str(sds.conversation_id),
        "text": sds.text,
        "payloads": [
            {"content_type": int(p.content_type), "text": p.text, "data": p.data.hex()}
            for p in sds.payloads
        ],
        "emergency": sds.emergency,
        "alert": sds.alert,
        "imminent_peril": sds.imminent_peril,
        "received_at": sds.received_at,
    }


def _notification_json(index: int, note: McdataNotificationReceived) -> dict[str, Any]:
    return {
        "index": index,
        "from": str(note.sender),
        "message_id": str(note.message_id),
        "notification": int(note.notification_type),
    }


class McdataControl(ControlServer["McdataSystemSimulator"]):
    """The HTTP control server of one :class:`McdataSystemSimulator`.

    Args:
        simulator: The simulated MCX system it drives.
        host: Address to listen on (loopback by default: it has no authentication).
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    """

    _label = "mcdata_sim_control"

    def _routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/healthz", self._healthz)
        router.add_get("/users", self._users)
        router.add_post("/users/{uri}/sds", self._send)
        router.add_get("/users/{uri}/received", self._received)
        router.add_get("/users/{uri}/notifications", self._notifications)
        router.add_post("/faults", self._faults)

    # ------------------------------------------------------------------ handlers

    def _user(self, request: web.Request) -> str:
        uri = request.match_info["uri"]
        if uri not in self.simulator.received:
            raise Problem(404, "unknown_user", f"{uri!r} is not a simulated MCData user")
        return uri

    async def _healthz(self, _request: web.Request) -> web.Response:
        sim = self.simulator
        return web.json_response(
            {
                "status": "ok",
                "gateway_connected": sim.gateway_connected or sim.inbound_connections > 0,
                "users": len(sim.users),
            }
        )

    async def _users(self, _request: web.Request) -> web.Response:
        return web.json_response({"users": self.simulator.users, "groups": self.simulator.groups})

    async def _received(self, request: web.Request) -> web.Response:
        user = self._user(request)
        since = query_since(request)
        items = self.simulator.received[user]
        messages = [_sds_json(i, sds) for i, sds in enumerate(items[since:], start=since)]
        return web.json_response({"user": user, "count": len(items), "messages": messages})

    async def _notifications(self, request: web.Request) -> web.Response:
        user = self._user(request)
        since = query_since(request)
        items = self.simulator.notifications.get(user, [])
        messages = [_notification_json(i, n) for i, n in enumerate(items[since:], start=since)]
        return web.json_response({"user": user, "count": len(items), "messages": messages})

    async def _faults(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        unknown = set(body) - {"silent", "drop_connections"}
        if unknown or not body or not all(isinstance(v, bool) for v in body.values()):
            raise Problem(400, "invalid_body", "expected silent and/or drop_connections (booleans)")
        if "silent" in body:
            self.simulator.set_silent(body["silent"])
        if body.get("drop_connections"):
            self.simulator.drop_connections()
        _log.info("mcdata_sim_control_fault", **body)
        return web.json_response({"applied": body})

    async def _send(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await read_json_object(request)
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise Problem(400, "invalid_body", f"unknown field(s): {', '.join(unknown)}")
        to = body.get("to")
        if not isinstance(to, str) or not to or len(to) > 512:
            raise Problem(400, "invalid_body", "to must be an MCData ID")
        kinds = [kind for kind in _KINDS if kind in body]
        if "emergency" in kinds:  # an emergency alert may carry a text and a position
            kinds = [kind for kind in kinds if kind not in ("text", "latitude")]
        if len(kinds) != 1:
            raise Problem(
                400,
                "invalid_body",
                "exactly one of text, status, latitude/longitude and emergency is required",
            )
        kind = kinds[0]
        group = body.get("group")
        if group is not None and not isinstance(group, bool):
            raise Problem(400, "invalid_body", "group must be a boolean")
        arguments = self._arguments(kind, body)
        try:
            outcome = await self.simulator.send_sds(user, to, group=group, **arguments)
        except GatewayError as exc:  # LinkError, LocalProtocolError
            raise Problem(503, "no_gateway", str(exc)) from exc
        answer = {
            "user": user,
            "to": to,
            "kind": kind,
            "sip_status": outcome.status,
            "message_id": str(outcome.message_id),
        }
        if not outcome.ok:
            detail = outcome.reason or "no final response"
            return web.json_response({"error": "refused", "detail": detail} | answer, status=502)
        return web.json_response(answer)

    def _arguments(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of :meth:`McdataSystemSimulator.send_sds` for the body."""
        disposition_name = body.get("disposition", "delivery" if kind == "text" else "none")
        if disposition_name not in _DISPOSITIONS:
            raise Problem(
                400, "invalid_body", f"disposition must be one of {', '.join(_DISPOSITIONS)}"
            )
        arguments: dict[str, Any] = {"disposition": _DISPOSITIONS[disposition_name]}
        text = body.get("text")
        if "text" in body and (not isinstance(text, str) or not text):
            raise Problem(400, "invalid_body", "text must be a non-empty string")
        if kind == "text":
            arguments["text"] = text
        elif kind == "status":
            arguments["enhanced_status"] = integer(body, "status", 0, 0xFFFF)
        elif kind == "latitude":
            arguments["location"] = (
                number(body, "latitude", -90, 90),
                number(body, "longitude", -180, 180),
            )
        else:
            if body["emergency"] is not True:
                raise Problem(400, "invalid_body", "emergency must be true")
            arguments.update(emergency=True, alert=True)
            if "latitude" in body or "longitude" in body:
                arguments["location"] = (
                    number(body, "latitude", -90, 90),
                    number(body, "longitude", -180, 180),
                )
            else:
                arguments["text"] = text or _EMERGENCY_TEXT
        return arguments
