"""Run a local Mosquitto broker with mutual TLS and the federation ACL (demo and tests).

:class:`MosquittoBroker` writes a ``mosquitto.conf``, starts ``mosquitto -c`` on a free port
of the loopback interface (retrying on a bind race), waits for the broker's "running" log
line and stops it with SIGTERM (then SIGKILL). Its log is kept; :meth:`MosquittoBroker.log`
returns it, and a broker that fails to start raises with it.

Listener: TLS 1.3 only, the federation's CA file, a server certificate minted by
:mod:`certs` (role ``gateway``: the only leaf role with serverAuth), client certificates
required, the subject as username (see :mod:`gateway.mqtt_acl`), the CRLs of the trust
bundle when it has any, no anonymous access, no persistence.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from datetime import datetime
from pathlib import Path
from types import TracebackType

from certs.bundle import CAFILE, TrustBundle
from certs.federation import Credential, Federation
from certs.identity import Role
from gateway.mqtt_acl import generate_acl
from protocols.errors import LinkError

__all__ = [
    "BROKER_NAME",
    "BrokerError",
    "MosquittoBroker",
    "find_mosquitto",
    "mint_broker_credential",
]

#: Name of the broker's certificate in a minted federation (``euccs://DE/gateway/mqtt-broker``).
BROKER_NAME = "mqtt-broker"
_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


class BrokerError(LinkError):
    """The broker cannot be started (the message carries its log)."""


def find_mosquitto() -> str:
    """Return the path of the ``mosquitto`` executable.

    Raises:
        BrokerError: Not installed (run ``scripts/ensure-mosquitto``).
    """
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise BrokerError("mosquitto is not installed; run scripts/ensure-mosquitto")


def mint_broker_credential(
    federation: Federation, *, now: datetime, country: str, name: str = BROKER_NAME
) -> Credential:
    """Issue the broker's server certificate from ``country``'s CA (role gateway).

    The broker needs serverAuth, which only the gateway role carries; its name
    (``mqtt-broker``) has no entry in the ACL, so the certificate grants no MQTT access,
    and gateways refuse batches it would sign (see ``MqttSettings.broker_identities``).
    """
    ca = federation.ca(country)
    issued = ca.issue(
        Role.GATEWAY, name, now=now, out=federation.directory / country / f"broker-{name}"
    )
    return Credential.of(issued)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class MosquittoBroker:
    """A Mosquitto process with a mutual-TLS listener on a free loopback port.

    Args:
        directory: Where the configuration, ACL, CRL file and log go.
        cafile: PEM file with every CA of the federation.
        certfile: The broker's certificate.
        keyfile: The broker's key.
        acl: The ACL text (see :func:`gateway.mqtt_acl.generate_acl`).
        crl_pem: CRLs (PEM, concatenated) to check client certificates against.
        host: Interface to listen on.
        executable: The mosquitto binary (default: :func:`find_mosquitto`).
        ready_timeout: Seconds to wait for the broker to start.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        cafile: str | Path,
        certfile: str | Path,
        keyfile: str | Path,
        acl: str,
        crl_pem: str = "",
        host: str = "127.0.0.1",
        executable: str | None = None,
        ready_timeout: float = 10.0,
    ) -> None:
        self.directory = Path(directory)
        self.cafile = Path(cafile)
        self.certfile = Path(certfile)
        self.keyfile = Path(keyfile)
        self.acl = acl
        self.crl_pem = crl_pem
        self.host = host
        self.executable = executable
        self.ready_timeout = ready_timeout
        self.port = 0
        self._process: subprocess.Popen[str] | None = None
        self._log: list[str] = []
        self._lock = threading.Lock()

    @classmethod
    def for_federation(
        cls,
        federation: Federation,
        bundle: TrustBundle,
        broker: Credential,
        directory: str | Path,
        *,
        gateways: dict[str, str] | None = None,
    ) -> MosquittoBroker:
        """A broker for a federation minted by :func:`certs.mint_federation`.

        Args:
            federation: The minted federation (its bundle's CA file is the broker's cafile).
            bundle: The current trust bundle (its CRLs are checked).
            broker: The broker's credential (:func:`mint_broker_credential`).
            directory: Working directory of the broker.
            gateways: Member (a country, or ``DE-2`` of a split country) -> gateway name for
                the ACL (default: the minted gateways).
        """
        names = gateways or {c: cred.identity.name for c, cred in federation.gateways.items()}
        return cls(
            directory,
            cafile=federation.bundle_dir / CAFILE,
            certfile=broker.cert,
            keyfile=broker.key,
            acl=generate_acl(names),
            crl_pem=bundle.crl_pem(),
        )

    def config_text(self, port: int) -> str:
        """The ``mosquitto.conf`` for a listener on ``port``."""
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            "persistence false",
            # Small PUBLISHes to subscribers must not wait for a delayed ACK (Nagle).
            "set_tcp_nodelay true",
            f"acl_file {self.directory / 'acl'}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
            f"listener {port} {self.host}",
            f"cafile {self.cafile}",
            f"certfile {self.certfile}",
            f"keyfile {self.keyfile}",
            "require_certificate true",
            "use_subject_as_username true",
            "use_username_as_clientid true",
            "tls_version tlsv1.3",
        ]
        if self.crl_pem:
            lines.append(f"crlfile {self.directory / 'crl.pem'}")
        if os.name == "posix" and os.geteuid() == 0:
            lines.insert(0, "user root")  # stay root: the key files are root's, mode 0600
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start the broker on a free port (up to five attempts).

        Raises:
            BrokerError: It does not start; the message carries its log.
        """
        executable = self.executable or find_mosquitto()
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "acl").write_text(self.acl, encoding="utf-8")
        if self.crl_pem:
            (self.directory / "crl.pem").write_text(self.crl_pem, encoding="ascii")
        for _attempt in range(5):
            port = _free_port(self.host)
            conf = self.directory / "mosquitto.conf"
            conf.write_text(self.config_text(port), encoding="utf-8")
            if self._launch(executable, conf):
                self.port = port
                return
            if "Address already in use" not in self.log():
                break
        raise BrokerError(f"mosquitto did not start; its log:\n{self.log()}")

    def _launch(self, executable: str, conf: Path) -> bool:
        ready = threading.Event()
        running = threading.Event()
        process = subprocess.Popen(  # noqa: S603 - our own executable and arguments
            [executable, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._process = process

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                with self._lock:
                    self._log.append(line)
                if " running" in line:
                    running.set()
                    ready.set()
            ready.set()  # EOF: the process ended

        threading.Thread(target=pump, name="mosquitto-log", daemon=True).start()
        if ready.wait(self.ready_timeout) and running.is_set() and process.poll() is None:
            return True
        self.stop()
        return False

    def log(self) -> str:
        """The broker's log so far."""
        with self._lock:
            return "".join(self._log)

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after 5 s."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stdout is not None:
            with contextlib.suppress(OSError):
                process.stdout.close()

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (None before start and after stop)."""
        return self._process.pid if self._process is not None else None

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
