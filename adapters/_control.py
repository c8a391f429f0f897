"""What the simulators' HTTP control interfaces share: lifecycle, JSON errors, body checks.

A simulator's control server subclasses :class:`ControlServer`, adds its routes in
:meth:`ControlServer._routes` and raises :class:`Problem` for every error answer:
the middleware turns it (and aiohttp's own HTTP errors) into JSON
``{"error": code, "detail": text}``, so the server never crashes on input.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import structlog
from aiohttp import web

__all__ = [
    "MAX_BODY_BYTES",
    "ControlServer",
    "Problem",
    "integer",
    "number",
    "query_since",
    "read_json_object",
]

_log = structlog.get_logger(__name__)

#: Largest request body accepted.
MAX_BODY_BYTES = 64 * 1024

S = TypeVar("S")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An error answer: HTTP status, code and explanation."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def _error(status: int, code: str, detail: str) -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status)


@web.middleware
async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error; the server never crashes on input."""
    try:
        return await handler(request)
    except Problem as problem:
        return _error(problem.status, problem.code, problem.detail)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    except web.HTTPException as exc:
        code = "not_found" if exc.status == 404 else "http_error"
        return _error(exc.status, code, exc.reason)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """Return the request's JSON object body, or raise a 400/413 problem."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Problem(413, "body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(400, "malformed_json", f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise Problem(400, "invalid_body", "the body must be a JSON object")
    return body


def number(body: dict[str, Any], name: str, low: float, high: float) -> float:
    """The number ``body[name]`` in ``low..high`` (not a boolean), or a 400 problem."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise Problem(400, "invalid_body", f"{name} must be a number in {low}..{high}")
    return float(value)


def integer(body: dict[str, Any], name: str, low: int, high: int) -> int:
    """The integer ``body[name]`` in ``low..high`` (not a boolean), or a 400 problem."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Problem(400, "invalid_body", f"{name} must be an integer in {low}..{high}")
    return value


def query_since(request: web.Request) -> int:
    """The ``since`` query parameter (default 0), or a 400 problem."""
    raw = request.query.get("since", "0")
    if not raw.isdigit():
        raise Problem(400, "invalid_query", "since must be a non-negative integer")
    return int(raw)


class ControlServer(abc.ABC, Generic[S]):
    """The HTTP control server of one simulator: listens on ``host:port``, serves :meth:`app`.

    Subclasses set :attr:`_label` (the prefix of log events) and implement
    :meth:`_routes`.

    Args:
        simulator: The simulator it drives.
        host: Address to listen on (loopback by default: it has no authentication).
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    """

    _label: str = "control"

    def __init__(self, simulator: S, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL of the control interface."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def app(self) -> web.Application:
        """The aiohttp application (also usable with aiohttp's test client)."""
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_errors])
        self._routes(app.router)
        return app

    @abc.abstractmethod
    def _routes(self, router: web.UrlDispatcher) -> None:
        """Add the server's routes to ``router``."""

    async def start(self) -> None:
        """Start listening; :attr:`port` is valid when this returns."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        _log.info(f"{self._label}_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop listening and close open requests."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
