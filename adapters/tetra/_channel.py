"""The half-duplex command channel of one PEI session.

What it does: send one AT command at a time over a connected PEI stream, bind the
radio's final result code (and any ``+CMGS`` set result or ``AT+CMGS=?`` answer)
to that command, and match the unsolicited final ``+CMGS: <i>,<status>`` to the
SDS that the radio accepted as instance ``<i>``. A command the radio does not
answer in time declares the session dead.

What it must not do: parse PEI bytes (the codec :class:`protocols.tetra.PeiConnection`
does), reconnect, or log message contents.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypeVar

from adapters.tetra._config import SendOutcome
from protocols.errors import LinkError, LinkTimeoutError
from protocols.tetra import (
    CommandCompleted,
    PeiCommand,
    PeiConnection,
    RawCommand,
    SelectSdsService,
    SendCapability,
    SendResult,
    SendSds,
)

__all__ = ["SDS_STATUS_SENT", "Exchange", "PeiChannel", "describe"]

#: ``+CMGS`` SDS status meaning "sent OK" (svxlink ``SdsSentState``; 5 = send failed).
SDS_STATUS_SENT = 4

#: Short texts for the PEI error codes seen most often (EN 300 392-5, svxlink ``getPeiError``).
_CME_TEXT = {
    3: "not allowed in current state",
    4: "operation not supported",
    30: "out of service",
    31: "no layer 2 acknowledgement from SwMI",
    32: "user data decoding failed",
    35: "syntax error",
    36: "user data without AT+CMGS",
    37: "AT+CMGS timed out waiting for user data",
    41: "transmit inhibit",
    42: "MT busy with signalling",
}

_T = TypeVar("_T")


def describe(command: PeiCommand) -> str:
    """Name a command for logs and reasons, without its user data."""
    if isinstance(command, SendSds):
        return f"AT+CMGS={command.destination},{command.bits}"
    if isinstance(command, RawCommand):
        return command.line
    return type(command).__name__


def _cme_reason(command: str, completed: CommandCompleted) -> str:
    if completed.cme_error is None:
        return f"radio answered ERROR to {command}"
    text = _CME_TEXT.get(completed.cme_error, "unknown PEI error")
    return f"radio answered +CME ERROR: {completed.cme_error} ({text}) to {command}"


def _mark_failed(future: asyncio.Future[_T], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # the awaiting side still sees it; no "never retrieved" noise


@dataclass
class Exchange:
    """The one outstanding AT command and what the radio said before its final result."""

    done: asyncio.Future[CommandCompleted]
    send_results: list[SendResult] = field(default_factory=list)
    capability: SendCapability | None = None


class PeiChannel:
    """Command side of one connected PEI stream; replaced on every reconnect.

    Args:
        conn: The session's codec.
        writer: Where the codec's bytes go.
        name: Adapter name, for error messages.
        command_timeout: Seconds the radio has to answer a command.
        send_timeout: Seconds the radio has to report an accepted SDS's final status.
        log: Bound structlog logger.
    """

    def __init__(
        self,
        conn: PeiConnection,
        writer: asyncio.StreamWriter,
        *,
        name: str,
        command_timeout: float,
        send_timeout: float,
        log: Any,
    ) -> None:
        self.conn = conn
        self.writer = writer
        #: AI service selected with ``AT+CTSDS``; None until the first selection.
        self.ai_service: int | None = None
        self._name = name
        self._command_timeout = command_timeout
        self._send_timeout = send_timeout
        self._log = log
        self._lock = asyncio.Lock()
        self._exchange: Exchange | None = None
        self._pending_status: dict[int, asyncio.Future[SendResult]] = {}
        self._failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = False

    async def watch(self) -> None:
        """Wait until :meth:`abort` is called, then raise its error (run as a task)."""
        await self._failed

    def abort(self, exc: LinkError) -> None:
        """Declare the session dead; :meth:`watch` raises ``exc``."""
        if not self._failed.done():
            self._failed.set_exception(exc)

    def close(self, exc: LinkError) -> None:
        """Fail every waiter with ``exc`` and refuse further commands."""
        self._closed = True
        if self._exchange is not None:
            _mark_failed(self._exchange.done, exc)
        for future in self._pending_status.values():
            _mark_failed(future, exc)
        if not self._failed.done():
            self._failed.cancel()

    async def command(self, command: PeiCommand) -> Exchange:
        """Send one command and wait for its final result (one outstanding at a time).

        Raises:
            LinkError: If the channel is closed or fails meanwhile.
            LinkTimeoutError: If the radio does not answer in time (the session is
                then aborted).
        """
        async with self._lock:
            if self._closed:
                raise LinkError(f"PEI session of adapter {self._name} is closed.")
            exchange = Exchange(asyncio.get_running_loop().create_future())
            self._exchange = exchange
            try:
                self.writer.write(self.conn.send(command))
                async with asyncio.timeout(self._command_timeout):
                    await self.writer.drain()
                    await exchange.done
            except TimeoutError as exc:
                error = LinkTimeoutError(
                    f"Radio did not answer {describe(command)} within "
                    f"{self._command_timeout}s; declaring the PEI link dead."
                )
                self.abort(error)
                raise error from exc
            finally:
                self._exchange = None
        return exchange

    async def expect_ok(self, command: PeiCommand, *, fatal: bool) -> bool:
        """Send ``command``; True if the radio answered OK.

        Raises:
            LinkError: If ``fatal`` and the radio refused the command.
        """
        completed = (await self.command(command)).done.result()
        if completed.ok:
            return True
        reason = _cme_reason(describe(command), completed)
        if fatal:
            raise LinkError(f"Radio refused a required command: {reason}.")
        self._log.warning("pei_command_refused", reason=reason)
        return False

    async def select_service(self, service: int, *, fatal: bool = True) -> bool:
        """Switch the SDS AI service (``AT+CTSDS``) unless it is already selected.

        Returns False if the radio refused it and ``fatal`` is False (with ``fatal`` a
        refusal raises :class:`LinkError`, as :meth:`expect_ok` does).
        """
        if self.ai_service == service:
            return True
        if not await self.expect_ok(SelectSdsService(ai_service=service), fatal=fatal):
            return False
        self.ai_service = service
        return True

    async def send_pdu(self, command: SendSds, references: list[int]) -> SendOutcome:
        """Submit one SDS and wait for the radio's final status (4 sent, 5 failed)."""
        exchange = await self.command(command)
        instances = [result.sds_instance for result in exchange.send_results]
        try:
            return await self._await_final_status(command, exchange, list(references))
        finally:
            for instance in instances:
                self._pending_status.pop(instance, None)

    async def _await_final_status(
        self, command: SendSds, exchange: Exchange, refs: list[int]
    ) -> SendOutcome:
        completed = exchange.done.result()
        if not completed.ok:
            # The reason may travel abroad in a FAILED receipt: it names the command, not
            # the radio it was for (an ISSI of the national network stays in our log).
            reason = _cme_reason("AT+CMGS", completed)
            self._log.info("pei_send_refused", command=describe(command), reason=reason)
            return SendOutcome(
                ok=False, message_references=refs, cme_error=completed.cme_error, reason=reason
            )
        if not exchange.send_results:
            return SendOutcome(ok=False, message_references=refs, reason="no +CMGS set result")
        instance = exchange.send_results[-1].sds_instance
        try:
            async with asyncio.timeout(self._send_timeout):
                while True:
                    final = await self._pending_status[instance]
                    reference = final.message_reference
                    if reference is None or not refs or reference in refs:
                        break
                    # The late status of an earlier SDS that reused this instance number
                    # (its own wait timed out): not ours, keep waiting for ours.
                    self._log.warning(
                        "pei_send_status_of_another_sds",
                        instance=instance,
                        message_reference=final.message_reference,
                        expected=refs,
                    )
                    self._pending_status[instance] = asyncio.get_running_loop().create_future()
        except TimeoutError:
            reason = f"no final +CMGS status within {self._send_timeout}s"
            return SendOutcome(ok=False, message_references=refs, reason=reason)
        if final.sds_status != SDS_STATUS_SENT:
            return SendOutcome(
                ok=False,
                message_references=refs,
                sds_status=final.sds_status,
                reason=f"radio reported SDS status {final.sds_status} (send failed)",
            )
        return SendOutcome(ok=True, message_references=refs, sds_status=final.sds_status)

    # ------------------------------------------------------------------ codec events

    def on_completed(self, event: CommandCompleted) -> None:
        """Bind a final result code to the outstanding command."""
        exchange = self._exchange
        if exchange is None or exchange.done.done():
            self._log.warning("pei_unexpected_final_result", command=event.command, ok=event.ok)
            return
        exchange.done.set_result(event)

    def on_capability(self, event: SendCapability) -> None:
        """Keep the ``AT+CMGS=?`` answer for the outstanding command."""
        if self._exchange is None:
            self._log.warning("pei_unexpected_capability", max_pdu_bits=event.max_pdu_bits)
            return
        self._exchange.capability = event

    def on_send_result(self, event: SendResult) -> None:
        """Record a ``+CMGS`` set result, or resolve a final status."""
        if event.sds_status is None:
            if self._exchange is None:
                self._log.warning("pei_unexpected_set_result", instance=event.sds_instance)
                return
            self._exchange.send_results.append(event)
            loop = asyncio.get_running_loop()
            self._pending_status[event.sds_instance] = loop.create_future()
            return
        future = self._pending_status.get(event.sds_instance)
        if future is None or future.done():
            self._log.warning(
                "pei_unmatched_send_status",
                instance=event.sds_instance,
                sds_status=event.sds_status,
            )
            return
        future.set_result(event)
