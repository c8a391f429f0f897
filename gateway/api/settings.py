"""The ``[api]`` table of a gateway configuration.

::

    [api]
    listen = "0.0.0.0:8443"              # HTTPS with mutual TLS (port 0: any free port)
    cert = "/etc/euccs/gateway.pem"      # this gateway's certificate (role gateway)
    key = "/etc/euccs/gateway.key"
    bundle = "/etc/euccs/bundle"         # the federation trust bundle directory
    metrics_listen = "127.0.0.1:9464"    # optional plain-HTTP /metrics, /healthz, /readyz
    include_payload_in_audit = false     # exercises only: message text in the audit trail
    handshake_timeout = 10.0             # seconds for a client to complete the TLS handshake
    header_timeout = 10.0                # seconds for a complete request head (and keep-alive)
    max_connections = 256                # connections served at once; more are refused
    max_connections_per_address = 32     # of those, from one remote address at most

Relative paths are taken from the working directory, as for ``[journal] path``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from gateway._toml import Table
from protocols.errors import ConfigError

__all__ = ["ApiSettings", "parse_api", "parse_listen"]

_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
#: Default bound of a request body (bytes): a text of 1000 characters fits many times over.
DEFAULT_MAX_BODY = 16 * 1024
#: Default number of messages kept in the in-memory message log.
DEFAULT_LOG_SIZE = 1000
#: Default seconds a client gets to complete the TLS handshake.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
#: Default seconds a client gets to send a complete request head (slow-loris bound).
DEFAULT_HEADER_TIMEOUT = 10.0
#: Default number of connections (handshaking or served) on the HTTPS listener at once.
DEFAULT_MAX_CONNECTIONS = 256
#: Default number of those one remote address may hold (capped at ``max_connections``).
DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 32


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    """Validated ``[api]`` settings.

    Attributes:
        host: Address the HTTPS listener binds to.
        port: Its port (0: a free port, see the bound URL).
        cert: This gateway's certificate (PEM, role gateway: serverAuth).
        key: Its private key (PEM).
        bundle: The federation trust bundle directory.
        metrics_host: Address of the optional plain-HTTP monitoring listener.
        metrics_port: Its port (None: no plain-HTTP listener).
        include_payload_in_audit: Put message text into the audit trail (exercises only).
        max_body_bytes: Largest request body accepted (larger: 413).
        message_log_size: Messages kept in the in-memory message log.
        console_dir: Directory of the web console served at ``/`` (None: the packaged
            ``gateway/console`` if it exists).
        handshake_timeout: Seconds a client gets to complete the TLS handshake; then the
            connection is dropped (counted as TLS failure ``handshake_timeout``).
        header_timeout: Seconds a client gets to send a complete request head, counted from
            the end of the handshake or of the previous request; then the connection is
            dropped (counted as API rejection ``header_timeout``; an idle keep-alive
            connection is closed quietly).
        max_connections: Connections on the HTTPS listener at once (TLS handshakes
            included); more are closed at once (API rejection ``too_many_connections``).
        max_connections_per_address: Connections one remote IP address may hold at once
            (1 to ``max_connections``; default 32 or ``max_connections`` if lower); more
            from it are closed at once (API rejection
            ``too_many_connections_from_address``), so one address cannot take every slot.
    """

    host: str
    port: int
    cert: Path
    key: Path
    bundle: Path
    metrics_host: str | None = None
    metrics_port: int | None = None
    include_payload_in_audit: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY
    message_log_size: int = DEFAULT_LOG_SIZE
    console_dir: Path | None = None
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_address: int = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS


def parse_listen(text: str) -> tuple[str, int]:
    """Parse ``host:port`` (``[v6]:port`` for IPv6) into host and port.

    Raises:
        ValueError: Not a listen address.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise ValueError(f"{text!r} is not host:port (e.g. '127.0.0.1:8443' or '[::1]:8443')")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{text!r}: port {port} is above 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
    elif not _HOST.match(host):
        raise ValueError(f"{text!r}: {host!r} is not a host name or address")
    return host, port


def _listen(table: Table, key: str, *, required: bool) -> tuple[str, int] | None:
    value: str | None = table.string(key) if required else table.string(key, None)
    if value is None:
        return None
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise table.error(key, f"{exc}.") from None


def _path(table: Table, key: str) -> Path:
    value: str = table.string(key)
    if not value.strip():
        raise table.error(key, "must name a file or directory.")
    return Path(value)


def _seconds(table: Table, key: str, default: float) -> float:
    value = float(table.number(key, default, minimum=0.0))
    if not 0.0 < value <= 3600.0:
        raise table.error(key, f"{value} must be above 0 and at most 3600 seconds.")
    return value


def parse_api(table: Table) -> ApiSettings | None:
    """Validate the ``[api]`` table; None when it is empty (the API is off).

    Args:
        table: The ``[api]`` table (``root.table("api")``: empty when absent).

    Returns:
        The settings, or None if the table has no keys.

    Raises:
        ConfigError: A key is missing, mistyped, malformed or unknown; the message names it.
    """
    data = dict(table.items())
    if not data:
        return None
    # A fresh reader over the same keys: the caller's table counts every key as read now,
    # and this one's finish() still names the unknown ones.
    table = Table(data, "api")
    listen = _listen(table, "listen", required=True)
    assert listen is not None
    metrics = _listen(table, "metrics_listen", required=False)
    console: str | None = table.string("console_dir", None)
    max_connections = int(
        table.number("max_connections", float(DEFAULT_MAX_CONNECTIONS), minimum=1)
    )
    per_address = int(
        table.number(
            "max_connections_per_address",
            float(min(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, max_connections)),
            minimum=1,
        )
    )
    if per_address > max_connections:
        raise table.error(
            "max_connections_per_address",
            f"{per_address} must be at most max_connections ({max_connections}).",
        )
    settings = ApiSettings(
        host=listen[0],
        port=listen[1],
        cert=_path(table, "cert"),
        key=_path(table, "key"),
        bundle=_path(table, "bundle"),
        metrics_host=metrics[0] if metrics else None,
        metrics_port=metrics[1] if metrics else None,
        include_payload_in_audit=table.boolean("include_payload_in_audit", False),
        max_body_bytes=int(table.number("max_body_bytes", float(DEFAULT_MAX_BODY), minimum=256)),
        message_log_size=int(table.number("message_log_size", float(DEFAULT_LOG_SIZE), minimum=10)),
        console_dir=Path(console) if console else None,
        handshake_timeout=_seconds(table, "handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT),
        header_timeout=_seconds(table, "header_timeout", DEFAULT_HEADER_TIMEOUT),
        max_connections=max_connections,
        max_connections_per_address=per_address,
    )
    table.finish()
    if metrics is not None and metrics == listen and listen[1] != 0:
        raise ConfigError("api.metrics_listen: must differ from api.listen.")
    return settings
