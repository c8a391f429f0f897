"""The aiohttp application of the control-room API: routes, authentication, JSON errors.

Authentication is the TLS client certificate: after the handshake (which already required a
certificate chaining to a CA of the trust bundle) every request's peer certificate goes
through :func:`certs.peer_identity`, which pins the identity to its country's CA and checks
the role. A control room (role ``console``) may use its own country's gateway only; the
monitoring routes (``/healthz``, ``/readyz``, ``/metrics``) also accept role ``gateway``.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from certs import PeerIdentity, PeerRefused, Refusal, Role, TrustBundle, peer_identity
from gateway.api.collect import render_metrics
from gateway.api.metrics import CONTENT_TYPE
from gateway.api.openapi import openapi_document
from gateway.api.recorder import RECHECK, Recorder, iso
from gateway.api.settings import ApiSettings
from gateway.api.validation import InvalidBody, Submission, parse_submission
from gateway.api.views import groups_view, links_view, readiness, unit_nation, units_view
from gateway.journal import JournalError
from gateway.node import Gateway
from protocols.errors import DeliveryRefused
from protocols.schema import v1
from protocols.tetra import DeliveryStatus

log = structlog.get_logger(__name__)

__all__ = [
    "CONSOLE_ORGANISATION",
    "ApiError",
    "Auth",
    "console_unit",
    "create_app",
    "create_monitoring_app",
    "default_console_dir",
]

#: Organisation of every control-room origin: ``<nation>.controlroom.<certificate name>``.
CONSOLE_ORGANISATION = "controlroom"
#: Routes open to monitoring systems (role gateway) as well as consoles.
MONITORING_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE_SECONDS = 15.0
#: Seconds an event stream's write may wait for its client to read before it is cut off.
STREAM_WRITE_SECONDS = 30.0
#: Seconds between two checks of an event stream's client certificate while events flow.
STREAM_RECHECK_SECONDS = 60.0
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
_PRIORITY = {
    "routine": v1.PRIORITY_ROUTINE,
    "high": v1.PRIORITY_HIGH,
    "imminent_peril": v1.PRIORITY_IMMINENT_PERIL,
    "emergency": v1.PRIORITY_EMERGENCY,
}
_REFUSAL_STATUS = {Refusal.WRONG_ROLE: 403, Refusal.WRONG_COUNTRY: 403}
#: What a client is told about its refused certificate. The refusal's own text names serial
#: numbers, CA subjects, the bundle's countries and CRL dates: it goes to the log only.
_REFUSAL_TEXT = {
    Refusal.MALFORMED: "the certificate cannot be read",
    Refusal.MISSING_IDENTITY: "the certificate carries no valid federation identity",
    Refusal.WRONG_ROLE: "the certificate's role may not use this resource",
    Refusal.UNKNOWN_CA: "the certificate is not issued by its country's CA in the trust bundle",
    Refusal.WRONG_COUNTRY: "the certificate is issued by the CA of another country",
    Refusal.BAD_SIGNATURE: "the certificate's signature does not verify",
    Refusal.NOT_YET_VALID: "the certificate is not valid yet",
    Refusal.EXPIRED: "the certificate has expired",
    Refusal.WRONG_USAGE: "the certificate may not be used for TLS client authentication",
    Refusal.REVOKED: "the certificate is revoked",
    Refusal.CRL_EXPIRED: "the revocation list of the certificate's country is out of date",
    Refusal.SUBJECT_MISMATCH: "the certificate's subject does not match its federation identity",
}


def _log_reference() -> str:
    """A fresh reference tying an error answer to the log line holding its full cause."""
    return secrets.token_hex(6)


class ApiError(Exception):
    """An error answered as ``{"error": code, "detail": message[, "field": field][, "ref": ref]}``.

    ``ref`` is set when the full cause is withheld from the client (file paths, database
    locations, certificate serials, exception texts): it names the log line that has it.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: Any,
        *,
        field: str | None = None,
        ref: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.ref = ref

    def response(self) -> web.Response:
        """The JSON error response."""
        body: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        if self.ref is not None:
            body["ref"] = self.ref
        return _json(body, status=self.status)


@dataclass
class Auth:
    """How requests are authenticated.

    Attributes:
        trust: The federation trust bundle; each request's client certificate is checked
            against it. None: no TLS (tests of the web console only); every request then
            acts as ``fixed_identity``.
        fixed_identity: The identity of every request when ``trust`` is None.
    """

    trust: TrustBundle | None
    fixed_identity: PeerIdentity | None = None


@dataclass(frozen=True)
class _Context:
    gateway: Gateway
    recorder: Recorder
    settings: ApiSettings
    auth: Auth
    console_dir: Path | None
    started: float


CONTEXT = web.AppKey("euccs_api_context", _Context)
IDENTITY = web.RequestKey("euccs_identity", PeerIdentity)


def default_console_dir() -> Path:
    """Where the packaged web console lives: ``gateway/console``."""
    return Path(__file__).resolve().parent.parent / "console"


def console_unit(gateway: Gateway, identity: PeerIdentity) -> str:
    """The federation identity of a control room: ``de.controlroom.<certificate name>``."""
    return f"{gateway.nation.lower()}.{CONSOLE_ORGANISATION}.{identity.name}"


def _json(data: Any, *, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _ctx(request: web.Request) -> _Context:
    return request.app[CONTEXT]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------------- middlewares


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as JSON; rejections counted by reason."""
    recorder = _ctx(request).recorder
    try:
        return await handler(request)
    except ApiError as exc:
        recorder.api_rejections[exc.code] += 1
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
        }.get(exc.status, re.sub(r"\W+", "_", exc.reason.lower()))
        recorder.api_rejections[code] += 1
        detail = exc.text or exc.reason
        if exc.status == 413:
            detail = (
                f"the request body is larger than {_ctx(request).settings.max_body_bytes} bytes"
            )
        elif exc.status == 404:
            detail = f"no resource at {request.path}"
        error = ApiError(exc.status, code, detail).response()
        if exc.status == 405 and "Allow" in exc.headers:
            error.headers["Allow"] = exc.headers["Allow"]
        return error
    except Exception:  # a bug: still a JSON answer, logged and counted, never a bare 500
        recorder.api_rejections["internal_error"] += 1
        ref = _log_reference()
        log.exception("api.internal_error", ref=ref, method=request.method, path=request.path)
        return ApiError(
            500,
            "internal_error",
            f"the gateway failed to answer; see its log (reference {ref})",
            ref=ref,
        ).response()


#: Headers on every answer: the console is not to be framed (clickjacking) nor sniffed, and
#: loads nothing but its own files.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


@web.middleware
async def _same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse state-changing requests a browser sends on behalf of another site.

    A browser presents the console's client certificate to any page that posts here, as
    it would a cookie: a request it marks as cross-site (``Sec-Fetch-Site``), or whose
    ``Origin`` is not this server, is refused. Clients that are not browsers send neither.
    """
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        site = request.headers.get("Sec-Fetch-Site")
        origin = request.headers.get("Origin")
        if site not in (None, "same-origin", "none") or (
            origin is not None and origin != f"{request.scheme}://{request.host}"
        ):
            raise ApiError(
                403, "cross_site", "a request from another site may not change anything here"
            )
    return await handler(request)


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pin every request to a console (or monitoring) identity of this gateway's country."""
    ctx = _ctx(request)
    auth = ctx.auth
    if auth.trust is None:
        assert auth.fixed_identity is not None
        request[IDENTITY] = auth.fixed_identity
        return await handler(request)
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        raise ApiError(401, "unauthenticated", "mutual TLS is required: no TLS session")
    roles = [Role.CONSOLE]
    if request.path in MONITORING_PATHS:
        roles.append(Role.GATEWAY)
    now = datetime.fromtimestamp(ctx.gateway.clock(), UTC)
    try:
        identity = peer_identity(ssl_object, auth.trust, now, roles=roles)
    except PeerRefused as exc:
        status = _REFUSAL_STATUS.get(exc.reason, 401)
        ref = _log_reference()
        log.warning(
            "api.certificate_refused",
            ref=ref,
            status=status,
            reason=exc.reason.value,
            error=str(exc),
            peer=request.remote,
            path=request.path,
        )
        text = _REFUSAL_TEXT.get(exc.reason, "the certificate is not accepted")
        raise ApiError(
            status,
            "forbidden" if status == 403 else "unauthenticated",
            f"client certificate refused ({exc.reason.value}): {text} (log reference {ref})",
            ref=ref,
        ) from None
    if identity.country != ctx.gateway.nation:
        raise ApiError(
            403,
            "wrong_country",
            f"{identity.uri} belongs to {identity.country}; a control room may only use its "
            f"own country's gateway, and this is the {ctx.gateway.nation} gateway "
            f"{ctx.gateway.name}",
        )
    request[IDENTITY] = identity
    return await handler(request)


# ---------------------------------------------------------------------- handlers


async def _units(request: web.Request) -> web.Response:
    return _json(units_view(_ctx(request).gateway))


async def _groups(request: web.Request) -> web.Response:
    return _json(groups_view(_ctx(request).gateway))


async def _list_messages(request: web.Request) -> web.Response:
    unknown = sorted(set(request.query) - {"limit"})
    if unknown:
        raise ApiError(
            400, "invalid_query", f"unknown query parameter {unknown[0]!r}", field=unknown[0]
        )
    raw = request.query.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= 1000:
        raise ApiError(
            400, "invalid_query", f"limit: {raw!r} is not an integer 1..1000", field="limit"
        )
    records = _ctx(request).recorder.messages.recent(int(raw))
    return _json([r.summary_json() for r in records])


def _hex_id(request: web.Request, name: str) -> bytes:
    raw = request.match_info[name]
    if not _HEX_ID.match(raw):
        raise ApiError(
            400, "invalid_id", f"{name}: {raw!r} is not 32 lower-case hex digits", field=name
        )
    return bytes.fromhex(raw)


async def _get_message(request: web.Request) -> web.Response:
    message_id = _hex_id(request, "message_id")
    record = _ctx(request).recorder.messages.get(message_id)
    if record is None:
        raise ApiError(404, "not_found", f"no message {message_id.hex()} in the message log")
    return _json(record.detail_json())


async def _read_json(request: web.Request) -> Any:
    content_type = request.content_type
    if content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, not {content_type!r}",
        )
    raw = await request.read()  # raises HTTPRequestEntityTooLarge beyond client_max_size
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "malformed_json",
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except (RecursionError, ValueError):  # nested too deep; an integer too long to read
        raise ApiError(400, "malformed_json", "the JSON is nested too deep or too long") from None


def _envelope(ctx: _Context, identity: PeerIdentity, submission: Submission) -> v1.Envelope:
    """Build the control room's envelope; raise ApiError (422/403) for what cannot go."""
    gateway = ctx.gateway
    envelope = v1.Envelope()
    envelope.origin.nation = gateway.nation
    envelope.origin.organisation = CONSOLE_ORGANISATION
    envelope.origin.unit = console_unit(gateway, identity)
    envelope.origin.system = v1.SYSTEM_TYPE_CONTROL_ROOM
    envelope.origin.native_id = identity.uri
    envelope.priority = _PRIORITY[submission.priority]
    field = f"to.{submission.target_kind}"
    if submission.target_kind == "unit":
        nation = unit_nation(gateway, submission.target)
        if nation is None:
            raise ApiError(
                422, "unknown_unit", f"no unit {submission.target!r} is known here", field=field
            )
        if nation == gateway.nation:
            raise ApiError(
                422,
                "not_cross_border",
                f"{submission.target!r} is a unit of {nation}: reach it through the national "
                "system, the gateway carries cross-border traffic only",
                field=field,
            )
        envelope.destination.unit.nation = nation
        envelope.destination.unit.unit = submission.target
    else:
        if gateway.directory.group_by_name(submission.target) is None:
            raise ApiError(
                422, "unknown_group", f"no cross-border group {submission.target!r}", field=field
            )
        envelope.destination.group.group = submission.target
    if submission.kind == "text":
        assert submission.text is not None
        envelope.text.text = submission.text
        envelope.report_request = v1.REPORT_REQUEST_DELIVERED
    elif submission.kind == "status":
        assert submission.status is not None
        meaning = None
        for adapter in gateway.config.adapters:
            codebook = gateway.config.codebooks[adapter.codebook]
            meaning = codebook.by_code(submission.status)
            if meaning is not None:
                envelope.status.codebook = codebook.name
                envelope.status.label = meaning.label
                break
        if meaning is None:
            raise ApiError(
                422,
                "unknown_status",
                f"status {submission.status!r} is in none of this gateway's codebooks",
                field="status",
            )
        envelope.status.code = submission.status
    else:
        envelope.emergency.active = True
        if submission.lat is not None and submission.lon is not None:
            envelope.emergency.location.latitude = submission.lat
            envelope.emergency.location.longitude = submission.lon
            envelope.emergency.location.fix_time_us = int(gateway.clock() * 1_000_000)
    _check_policy(gateway, envelope, submission)
    return envelope


def _check_policy(gateway: Gateway, envelope: v1.Envelope, submission: Submission) -> None:
    """Apply ``[policy]`` when a rule speaks about our own control rooms as an origin.

    The policy is written for partners' traffic; a rule whose origin matches
    ``<our nation>/controlroom`` restricts our control rooms too. Without such a rule the
    destination country's policy decides (a refusal comes back as a failed receipt).
    """
    policy = gateway.config.policy
    if not any(r.matches_origin(gateway.nation, CONSOLE_ORGANISATION) for r in policy.rules):
        return
    decision = policy.check(
        gateway.nation,
        CONSOLE_ORGANISATION,
        "unit" if submission.target_kind == "unit" else "group",
        submission.target,
        envelope.priority >= v1.PRIORITY_IMMINENT_PERIL,
    )
    if not decision.allowed:
        raise ApiError(403, "forbidden_by_policy", decision.reason)


async def _post_message(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    data = await _read_json(request)
    try:
        submission = parse_submission(data)
    except InvalidBody as exc:
        raise ApiError(400, "invalid_body", str(exc), field=exc.field) from None
    envelope = _envelope(ctx, request[IDENTITY], submission)
    try:
        message_id = await ctx.gateway.submit(envelope)
    except DeliveryRefused as exc:
        if exc.reason_code == DeliveryStatus.NETWORK_OVERLOAD:  # the journal cannot take it
            # The cause names the journal's file or database: the log has it, not the client.
            ref = _log_reference()
            log.error(
                "api.custody_refused",
                ref=ref,
                error=str(exc),
                identity=request[IDENTITY].uri,
            )
            raise ApiError(
                503,
                "unavailable",
                f"the journal cannot take custody now; see the gateway log (reference {ref})",
                ref=ref,
            ) from None
        raise ApiError(422, "undeliverable", str(exc)) from None
    return _json({"message_id": message_id.hex()}, status=202)


async def _alerts(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    ctx.recorder.sync_ledger()
    alerts = ctx.recorder.alerts.outstanding(ctx.gateway.clock())
    return _json([a.as_json() for a in alerts])


async def _ack(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    alert_id = _hex_id(request, "alert_id")
    if request.can_read_body:
        await request.read()  # an (ignored) body is allowed, within the size bound
    alert = ctx.recorder.acknowledge(alert_id, request[IDENTITY].uri)
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id.hex()}")
    return _json(alert.as_json())


async def _journal_backlog(gateway: Gateway) -> int | None:
    journal = gateway.journal
    if journal is None:
        return None
    try:
        async with asyncio.timeout(2.0):
            return await journal.submit(lambda j: j.count())
    except (TimeoutError, JournalError):
        return None


async def _links(request: web.Request) -> web.Response:
    gateway = _ctx(request).gateway
    return _json(links_view(gateway, await _journal_backlog(gateway)))


def _sse(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.get('id', 0)}\ndata: {data}\n\n".encode()


async def _events(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    hub = ctx.recorder.events
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    with hub.subscribe() as queue:
        await response.prepare(request)
        hello = {
            "type": "hello",
            "id": 0,
            "gateway": ctx.gateway.name,
            "nation": ctx.gateway.nation,
            "identity": request[IDENTITY].uri,
            "at": iso(ctx.gateway.clock()),
        }
        await _write(request, response, b"retry: 3000\n\n" + _sse(hello))
        keepalive = request.app.get(KEEPALIVE, KEEPALIVE_SECONDS)
        checked = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(keepalive):
                    event = await queue.get()
            except TimeoutError:
                event = {}
            if event is None:
                break
            # The certificate was checked when the stream opened; a stream lives long: it
            # is checked again when the trust bundle changes (a revocation), and at least
            # every keepalive or STREAM_RECHECK_SECONDS (an expiry).
            if event is RECHECK or time.monotonic() - checked >= STREAM_RECHECK_SECONDS:
                checked = time.monotonic()
                refusal = _still_trusted(request)
                if refusal is not None:
                    why, error = refusal
                    ctx.recorder.api_rejections["stream_ended"] += 1
                    log.warning(
                        "api.stream_ended", identity=request[IDENTITY].uri, why=why, error=error
                    )
                    goodbye = {"type": "goodbye", "id": 0, "reason": why}
                    await _write(request, response, _sse(goodbye))
                    break
            if event is RECHECK:
                continue
            await _write(request, response, _sse(event) if event else b": keepalive\n\n")
    return response


async def _write(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    """Write to an event stream; a client that stopped reading is cut off, not waited for."""
    try:
        async with asyncio.timeout(STREAM_WRITE_SECONDS):
            await response.write(data)
    except TimeoutError:
        _ctx(request).recorder.api_rejections["stream_stalled"] += 1
        log.warning("api.stream_stalled", identity=request[IDENTITY].uri)
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the event stream's client stopped reading") from None


def _still_trusted(request: web.Request) -> tuple[str, str] | None:
    """Why the stream's client certificate is no longer accepted, or None.

    Returns:
        What the client is told (the refusal's code), and the full cause for the log.
    """
    auth = _ctx(request).auth
    if auth.trust is None:
        return None
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return "no TLS session", "no TLS session"
    now = datetime.fromtimestamp(_ctx(request).gateway.clock(), UTC)
    try:
        peer_identity(ssl_object, auth.trust, now, roles=[Role.CONSOLE])
    except PeerRefused as exc:
        return f"client certificate refused ({exc.reason.value})", str(exc)
    return None


async def _openapi(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    return _json(openapi_document(console=ctx.console_dir is not None))


async def _metrics(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    text = render_metrics(ctx.gateway, ctx.recorder, await _journal_backlog(ctx.gateway))
    response = web.Response(text=text)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def _healthz(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    return _json(
        {
            "status": "ok",
            "gateway": ctx.gateway.name,
            "nation": ctx.gateway.nation,
            "member": ctx.gateway.member,
            "uptime_s": round(time.monotonic() - ctx.started, 3),
        }
    )


async def _readyz(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    reasons = readiness(ctx.gateway)
    return _json(
        {
            "status": "not ready" if reasons else "ready",
            "gateway": ctx.gateway.name,
            "nation": ctx.gateway.nation,
            "member": ctx.gateway.member,
            "reasons": reasons,
        },
        status=503 if reasons else 200,
    )


async def _console_file(request: web.Request) -> web.StreamResponse:
    root = _ctx(request).console_dir
    assert root is not None
    relative = request.match_info.get("path", "") or "index.html"
    try:
        target = (root / relative).resolve()
    except (OSError, ValueError):  # e.g. a NUL in the path
        target = root
    if not target.is_relative_to(root) or not target.is_file():
        raise ApiError(404, "not_found", f"no console file {relative!r}")
    return web.FileResponse(target, headers={"Cache-Control": "no-cache"})


KEEPALIVE = web.AppKey("euccs_keepalive_seconds", float)


def _new_app(ctx: _Context, *, middlewares: list[Any]) -> web.Application:
    app = web.Application(middlewares=middlewares, client_max_size=ctx.settings.max_body_bytes)
    app[CONTEXT] = ctx
    return app


def create_app(
    gateway: Gateway,
    settings: ApiSettings,
    recorder: Recorder,
    auth: Auth,
    *,
    keepalive: float = KEEPALIVE_SECONDS,
) -> web.Application:
    """The full API application (JSON API, event stream, monitoring, web console).

    Args:
        gateway: The gateway served.
        settings: The ``[api]`` settings.
        recorder: The gateway's recorder (attached by the caller).
        auth: How requests are authenticated.
        keepalive: Seconds between keep-alive comments on idle event streams.
    """
    if auth.trust is None and auth.fixed_identity is None:
        raise ValueError("without a trust bundle, a fixed identity is required")
    console = settings.console_dir or default_console_dir()
    console_dir = console.resolve() if console.is_dir() else None
    ctx = _Context(gateway, recorder, settings, auth, console_dir, time.monotonic())
    app = _new_app(ctx, middlewares=[_errors, _same_origin, _authenticate])
    app[KEEPALIVE] = keepalive
    app.on_shutdown.append(_close_streams)
    app.on_response_prepare.append(_security_headers)
    r = app.router
    r.add_get("/api/v1/units", _units, allow_head=False)
    r.add_get("/api/v1/groups", _groups, allow_head=False)
    r.add_get("/api/v1/messages", _list_messages, allow_head=False)
    r.add_post("/api/v1/messages", _post_message)
    r.add_get("/api/v1/messages/{message_id}", _get_message, allow_head=False)
    r.add_get("/api/v1/alerts", _alerts, allow_head=False)
    r.add_post("/api/v1/alerts/{alert_id}/ack", _ack)
    r.add_get("/api/v1/links", _links, allow_head=False)
    r.add_get("/api/v1/events", _events, allow_head=False)
    r.add_get("/openapi.json", _openapi, allow_head=False)
    _monitoring_routes(app)
    if console_dir is not None:
        r.add_get("/", _console_file, allow_head=False)
        r.add_get("/{path:.+}", _console_file, allow_head=False)
    return app


def _monitoring_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", _metrics, allow_head=False)
    app.router.add_get("/healthz", _healthz, allow_head=False)
    app.router.add_get("/readyz", _readyz, allow_head=False)


def create_monitoring_app(
    gateway: Gateway, settings: ApiSettings, recorder: Recorder
) -> web.Application:
    """The plain-HTTP monitoring application: ``/metrics``, ``/healthz``, ``/readyz`` only.

    No authentication: bind it to a loopback address (``api.metrics_listen``).
    """
    ctx = _Context(gateway, recorder, settings, Auth(None), None, time.monotonic())
    app = _new_app(ctx, middlewares=[_errors])
    _monitoring_routes(app)
    return app


async def _close_streams(app: web.Application) -> None:
    app[CONTEXT].recorder.events.close()
