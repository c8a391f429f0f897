"""Structured logging: one JSON object per line (structlog), to stderr or a file.

Message payload text is never logged by the gateway's own code (privacy): log
lines carry identities, message ids, sizes and reasons.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging"]


def _drop(_logger: Any, _name: str, _event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    raise structlog.DropEvent


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send structlog JSON lines at ``level`` and above to ``stream`` (stderr by default).

    ``level="off"`` drops every line.
    """
    numeric = _LEVELS.get(level, logging.CRITICAL)
    structlog.configure(
        processors=[
            *([_drop] if level == "off" else []),
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
