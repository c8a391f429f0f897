"""Where the radio's PEI is: URL parsing and opening the byte stream.

Two transports carry the PEI: a TCP connection to a serial-to-TCP server in front
of the radio (``tcp://host:port``), or a local serial device
(``serial:///dev/ttyUSB0?baudrate=38400``, opened with pyserial-asyncio).

This module must not parse PEI traffic; it only hands out a reader and a writer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from protocols.errors import ConfigError

__all__ = ["PeiEndpoint", "open_pei_stream", "parse_pei_url"]

_DEFAULT_BAUDRATE = 38400
_SERIAL_OPTIONS = {"baudrate", "bytesize", "parity", "stopbits", "rtscts", "xonxoff"}


@dataclass(frozen=True, kw_only=True)
class PeiEndpoint:
    """A parsed PEI URL.

    Attributes:
        scheme: ``"tcp"`` or ``"serial"``.
        host: TCP host (empty for serial).
        port: TCP port (0 for serial).
        device: Serial device path (empty for TCP).
        serial_options: Keyword arguments for ``serial.Serial`` (baudrate etc.).
    """

    scheme: str
    host: str = ""
    port: int = 0
    device: str = ""
    serial_options: tuple[tuple[str, int | str | bool], ...] = ()


def parse_pei_url(url: str) -> PeiEndpoint:
    """Parse ``tcp://host:port`` or ``serial:///dev/tty...?baudrate=N``.

    Args:
        url: The configured PEI address.

    Returns:
        The endpoint.

    Raises:
        ConfigError: If the URL is not one of the two supported forms.
    """
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"url={url!r} has an invalid TCP port.") from exc
        if not parts.hostname or port is None or port == 0:
            raise ConfigError(f"url={url!r} must be tcp://host:port with a port in 1..65535.")
        return PeiEndpoint(scheme="tcp", host=parts.hostname, port=port)
    if parts.scheme == "serial":
        if parts.netloc or not parts.path.startswith("/"):
            raise ConfigError(f"url={url!r} must be serial:///absolute/device/path.")
        return PeiEndpoint(
            scheme="serial", device=parts.path, serial_options=_serial_options(url, parts.query)
        )
    raise ConfigError(f"url={url!r} has unsupported scheme {parts.scheme!r} (tcp or serial).")


def _serial_options(url: str, query: str) -> tuple[tuple[str, int | str | bool], ...]:
    options: dict[str, int | str | bool] = {"baudrate": _DEFAULT_BAUDRATE}
    for key, values in parse_qs(query, keep_blank_values=True, strict_parsing=False).items():
        if key not in _SERIAL_OPTIONS or len(values) != 1:
            raise ConfigError(f"url={url!r} has an unsupported serial option {key!r}.")
        value = values[0]
        if key in {"rtscts", "xonxoff"}:
            options[key] = value.lower() in {"1", "true", "yes", "on"}
        elif key == "parity":
            if value.upper() not in {"N", "E", "O", "M", "S"}:
                raise ConfigError(f"url={url!r} has parity={value!r}; use N, E, O, M or S.")
            options[key] = value.upper()
        else:
            if not value.isdigit() or int(value) <= 0:
                raise ConfigError(f"url={url!r} has {key}={value!r}; expected a positive integer.")
            options[key] = int(value)
    return tuple(sorted(options.items()))


async def open_pei_stream(
    endpoint: PeiEndpoint,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the byte stream to the radio.

    Args:
        endpoint: Where the PEI is.

    Returns:
        A reader and a writer.

    Raises:
        OSError: If the transport cannot be opened (including serial errors,
            which pyserial reports as ``SerialException``, an ``OSError``).
    """
    if endpoint.scheme == "tcp":
        return await asyncio.open_connection(endpoint.host, endpoint.port)
    import serial_asyncio

    reader, writer = await serial_asyncio.open_serial_connection(
        url=endpoint.device, **dict(endpoint.serial_options)
    )
    return reader, writer
