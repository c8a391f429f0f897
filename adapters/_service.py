"""Lifecycle of a simulator that listens on TCP: start, stop, use as ``async with``."""

from __future__ import annotations

import abc
import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import structlog

if TYPE_CHECKING:
    from adapters._control import ControlServer

__all__ = ["ListeningService"]

_log = structlog.get_logger(__name__)


class ListeningService(abc.ABC):
    """Runs :meth:`_supervise` in a task; :meth:`start` returns once it is listening.

    Subclasses set :attr:`host`, :attr:`port` and :attr:`_label` (the prefix of task
    names and log events) and implement :meth:`_supervise`, which must set ``ready``
    once the listening socket is bound. A subclass may set :attr:`control`: its HTTP
    control interface, started after the listener and stopped before it.
    """

    host: str
    port: int
    _label: str = "service"
    _task: asyncio.Task[None] | None = None
    #: The HTTP control interface, if any.
    control: ControlServer[Any] | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start listening, then the control interface if any; :attr:`port` is valid then."""
        await self._listen()
        if self.control is not None:
            try:
                await self.control.start()
            except BaseException:
                await self._shutdown()
                raise

    async def stop(self) -> None:
        """Stop the control interface if any, then close every connection and stop listening."""
        if self.control is not None:
            await self.control.stop()
        await self._shutdown()

    async def _listen(self) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._supervise(ready), name=f"{self._label}.supervisor")
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            await self._task  # start failed: raise its exception
        _log.info(f"{self._label}_listening", host=self.host, port=self.port)

    async def _shutdown(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            _log.error(f"{self._label}_failed", exc_info=task.exception())

    @abc.abstractmethod
    async def _supervise(self, ready: asyncio.Future[None]) -> None:
        """Bind the listening socket, set ``ready``, then serve until cancelled."""
