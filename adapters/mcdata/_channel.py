"""One SIP stream connection (TCP or TLS): framing, keep-alives and transactions.

:class:`SipChannel` feeds every byte read to the sans-IO
:class:`protocols.sip.SipConnection` and acts on its events:

* a request is queued and handed, in order, to the owner's handler; the handler's
  response is written back on the same connection (RFC 3261 §18.2.2);
* a response completes the client transaction it belongs to, matched by the top Via
  branch, Call-ID and CSeq (RFC 3261 §17.1.3); provisional responses are skipped;
* a double-CRLF ping is answered with a CRLF pong, a pong wakes :meth:`ping`
  (RFC 5626 §4.4.1);
* a malformed message is answered (when its header fields allow a response) with the
  :class:`~protocols.sip.SipProtocolError`'s status and reason phrase plus a Warning
  naming the error, and the connection is closed.

Shared by :class:`~adapters.mcdata.McdataAdapter` and the simulator. No parsing here.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from adapters.mcdata._body import warning_header
from protocols.errors import LinkError, LocalProtocolError
from protocols.sip import (
    KEEPALIVE_PING,
    KEEPALIVE_PONG,
    NEED_DATA,
    ConnectionClosed,
    PingReceived,
    PongReceived,
    RandomBits,
    SipConnection,
    SipHeaders,
    SipProtocolError,
    SipRequest,
    SipResponse,
    SipRole,
    build_response,
    encode_message,
    make_tag,
)

__all__ = [
    "ProtocolErrorHandler",
    "RequestHandler",
    "SipChannel",
    "respond",
    "transaction_key",
]

_READ_SIZE = 65536
_QUEUE_SIZE = 64
_CLOSE_TIMEOUT = 2.0
_BRANCH = re.compile(r";\s*branch\s*=\s*([^;,\s]+)", re.IGNORECASE)

#: Answers one request: a response to write back, or None for no response (ACK).
RequestHandler = Callable[[SipRequest, "SipChannel"], Awaitable[SipResponse | None]]
#: Told about a malformed message: the error and the status answered (None if none was).
ProtocolErrorHandler = Callable[[SipProtocolError, "SipChannel", int | None], Awaitable[None]]

_Item = SipRequest | SipProtocolError | None


def respond(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    *,
    randbits: RandomBits,
) -> SipResponse:
    """The response to ``request``, with a fresh To tag drawn from ``randbits``."""
    return build_response(
        request.headers, status, reason, to_tag=make_tag(randbits), extra_headers=extra
    )


def transaction_key(headers: SipHeaders) -> tuple[str, str, str]:
    """Return (top Via branch, Call-ID, CSeq) identifying a non-INVITE client transaction."""
    vias = headers.get_list("Via")
    match = _BRANCH.search(vias[0]) if vias else None
    branch = match.group(1) if match else ""
    cseq = " ".join((headers.get("CSeq") or "").split())
    return branch, headers.get("Call-ID") or "", cseq


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class SipChannel:
    """Serve one SIP connection until it closes.

    Args:
        reader: Stream reader of the connection.
        writer: Stream writer of the connection.
        role: CLIENT if we opened the connection, SERVER if the peer did.
        max_body: Largest body accepted (larger gives 413).
        handler: Answers requests, one at a time in arrival order.
        on_protocol_error: Told about a malformed message before the channel closes.
        randbits: Random source for To tags.
        warning_agent: ``host[:port]`` written as the warn-agent of Warning headers.
        log: structlog logger (bound with the owner's name).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        role: SipRole,
        max_body: int,
        handler: RequestHandler,
        on_protocol_error: ProtocolErrorHandler,
        randbits: RandomBits,
        warning_agent: str,
        log: Any,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = SipConnection(role=role, max_body=max_body)
        self._handler = handler
        self._on_protocol_error = on_protocol_error
        self._randbits = randbits
        self._agent = warning_agent
        self.peer = _peer_name(writer)
        self._log = log.bind(peer=self.peer, role=role.value)
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(_QUEUE_SIZE)
        #: Requests taken from the queue unhandled once the connection broke.
        self._discarded = 0
        self._pending: dict[tuple[str, str, str], asyncio.Future[SipResponse]] = {}
        self._write_lock = asyncio.Lock()
        self._pong = asyncio.Event()
        self._reading = True
        #: Why the connection ended (empty while open).
        self.close_reason = ""

    @property
    def closed(self) -> bool:
        """True once nothing more can be read (no response to a new request can come)."""
        return not self._reading or self._writer.is_closing()

    def local_address(self) -> tuple[str, int] | None:
        """Return our (host, port) of the connection, if known."""
        sock = self._writer.get_extra_info("sockname")
        if isinstance(sock, tuple) and len(sock) >= 2:
            return str(sock[0]), int(sock[1])
        return None

    # ------------------------------------------------------------------ serving

    async def run(self) -> None:
        """Read and answer until the connection closes; raises only CancelledError."""
        worker = asyncio.create_task(self._work(), name=f"sip[{self.peer}].worker")
        try:
            await self._read_loop()
            self._reading = False
            self._fail_pending(f"connection to {self.peer} closed: {self.close_reason}")
            await self._queue.put(None)
            await asyncio.wait({worker})
            if not worker.cancelled() and worker.exception() is not None:
                self._log.error("sip_worker_failed", exc_info=worker.exception())
        finally:
            self._reading = False
            if not worker.done():
                worker.cancel()
                await asyncio.wait({worker})
            self._fail_pending(f"connection to {self.peer} closed: {self.close_reason}")
            await self._close_writer()

    async def _read_loop(self) -> None:
        while True:
            try:
                data = await self._reader.read(_READ_SIZE)
            except OSError as exc:
                self.close_reason = self.close_reason or f"read failed: {exc}"
                return
            self._conn.receive_data(data)
            if not await self._drain_events():
                return
            if not data:
                self.close_reason = self.close_reason or "closed by peer"
                return

    async def _drain_events(self) -> bool:
        """Handle every buffered event; return False when the connection is finished."""
        while True:
            try:
                event = self._conn.next_event()
            except SipProtocolError as exc:
                self.close_reason = f"protocol error: {exc}"
                await self._queue.put(exc)  # answered in order, after earlier requests
                return False
            if event is NEED_DATA:
                return True
            if isinstance(event, SipRequest):
                await self._queue.put(event)
            elif isinstance(event, SipResponse):
                self._on_response(event)
            elif isinstance(event, PingReceived):
                if not self._writer.is_closing():
                    self._writer.write(KEEPALIVE_PONG)
            elif isinstance(event, PongReceived):
                self._pong.set()
            elif isinstance(event, ConnectionClosed):
                self.close_reason = self.close_reason or "closed by peer"
                return False

    async def _work(self) -> None:
        broken = False
        while (item := await self._queue.get()) is not None:
            if broken:
                # Never handled, never answered: the peer sends them again on a new
                # connection. Taking them keeps the read loop from blocking on a full
                # queue (which would hold this connection's slot for good).
                self._discarded += 1
                continue
            if isinstance(item, SipProtocolError):
                await self._answer_error(item)
                self._writer.close()
                broken = True
                continue
            try:
                response = await self._handler(item, self)
            except Exception as exc:  # the handler's bug must not kill the connection
                self._log.exception("sip_handler_failed", method=item.method)
                response = self._error_response(item.headers, 500, "Server Internal Error", exc)
            if response is not None:
                try:
                    await self.write(encode_message(response))
                except LinkError as exc:
                    self._log.warning("sip_response_not_sent", error=str(exc))
                    self.abort(f"response not sent: {exc}")
                    broken = True
        if self._discarded:
            self._log.warning("sip_requests_not_handled", requests=self._discarded)

    async def _answer_error(self, error: SipProtocolError) -> None:
        self._log.warning("sip_protocol_error", status=error.status, error=str(error))
        status: int | None = None
        headers = error.headers
        if headers is not None and not self._is_ours(headers):
            response = self._error_response(headers, error.status, error.reason, error)
            if response is not None:
                with contextlib.suppress(LinkError):
                    await self.write(encode_message(response))
                    status = error.status
        try:
            await self._on_protocol_error(error, self, status)
        except Exception:
            self._log.exception("sip_protocol_error_handler_failed")

    def _is_ours(self, headers: SipHeaders) -> bool:
        """True if the message is (probably) a response to one of our requests."""
        branch = transaction_key(headers)[0]
        return any(key[0] == branch for key in self._pending)

    def _error_response(
        self, headers: SipHeaders, status: int, reason: str, error: BaseException
    ) -> SipResponse | None:
        try:
            return build_response(
                headers,
                status,
                reason,
                to_tag=make_tag(self._randbits),
                extra_headers=[warning_header(self._agent, str(error))],
            )
        except LocalProtocolError as exc:
            self._log.warning("sip_cannot_answer", status=status, error=str(exc))
            return None

    # ------------------------------------------------------------------ sending

    async def write(self, data: bytes) -> None:
        """Write bytes to the connection and wait until they are flushed.

        Raises:
            LinkError: The connection is closed or the write failed.
        """
        async with self._write_lock:
            if self._writer.is_closing():
                raise LinkError(f"SIP connection to {self.peer} is closed.")
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (OSError, RuntimeError) as exc:
                raise LinkError(f"Writing to {self.peer} failed: {exc}") from exc

    async def request(self, request: SipRequest, timeout: float) -> SipResponse | None:  # noqa: ASYNC109
        """Send a request and wait for its final response.

        Args:
            request: The request (its Via branch, Call-ID and CSeq identify the transaction).
            timeout: Seconds to wait for the final response.

        Returns:
            The final response, or None if none arrived within ``timeout``.

        Raises:
            LinkError: The connection is closed, or closed before the response came.
        """
        if self.closed:
            raise LinkError(f"SIP connection to {self.peer} is closed.")
        key = transaction_key(request.headers)
        if key in self._pending:
            raise LocalProtocolError(f"Transaction {key} is already pending.")
        future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            async with asyncio.timeout(timeout):
                await self.write(encode_message(request))
                return await future
        except TimeoutError:
            return None
        finally:
            self._pending.pop(key, None)
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: a failure was already raised or is moot

    async def ping(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Send a CRLF keep-alive ping and wait for the pong (client role).

        Returns:
            True if the pong arrived within ``timeout``.

        Raises:
            LinkError: The connection is closed.
        """
        self._pong.clear()
        try:
            async with asyncio.timeout(timeout):
                # The write too: a peer that stopped reading leaves it waiting for the
                # socket (or for the lock, behind a send doing so): that is no pong either.
                await self.write(KEEPALIVE_PING)
                await self._pong.wait()
        except TimeoutError:
            return False
        return True

    def abort(self, reason: str) -> None:
        """Drop the connection at once (the serving task then ends)."""
        self.close_reason = self.close_reason or reason
        self._writer.transport.abort()

    # ------------------------------------------------------------------ internals

    def _on_response(self, response: SipResponse) -> None:
        key = transaction_key(response.headers)
        future = self._pending.get(key)
        if future is None or future.done():
            self._log.warning("sip_stray_response", status=response.status, call_id=key[1])
            return
        if response.status < 200:
            self._log.debug("sip_provisional_response", status=response.status, call_id=key[1])
            return
        future.set_result(response)

    def _fail_pending(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(LinkError(reason))

    async def _close_writer(self) -> None:
        self._writer.close()
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await self._writer.wait_closed()
        except (OSError, TimeoutError) as exc:
            self._log.debug("sip_close_error", error=repr(exc))
            self._writer.transport.abort()
