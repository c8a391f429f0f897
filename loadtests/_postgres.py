"""A private PostgreSQL server for tests and benchmarks: own cluster, free port, stopped after.

Never the machine's own PostgreSQL service: :class:`PostgresCluster` runs ``initdb`` in a
temporary directory and starts ``postgres`` on a free loopback port with its socket in
that directory. PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` system user (the one the Debian package creates) and both programs run as it.
``scripts/ensure-postgres`` installs the binaries.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["PostgresCluster", "find_bindir", "fresh_database", "running_postgres"]

#: Seconds the server gets to start, and to stop.
_TIMEOUT = 60.0


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` (None: not installed)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        on_path = shutil.which("initdb")
        return Path(on_path).parent if on_path else None

    def version(path: str) -> tuple[int, ...]:
        part = Path(path).parent.parent.name
        return tuple(int(x) for x in part.split(".") if x.isdigit())

    return Path(max(found, key=version)).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """One throwaway cluster: :meth:`start`, then :attr:`url`, then :meth:`stop`."""

    def __init__(self, bindir: Path, *, database: str = "euccs_test") -> None:
        self.bindir = bindir
        self.database = database
        self.user = "euccs"
        self.root = Path(tempfile.mkdtemp(prefix="euccs-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        self.sockets.mkdir()
        if self._as:
            for path in (self.root, self.sockets):
                os.chown(path, self._as["user"], self._as["group"])

    @property
    def url(self) -> str:
        """URL of the test database (trust authentication, loopback)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        """Create the cluster, start the server, wait until it accepts connections."""
        subprocess.run(  # noqa: S603 - the binaries of the PostgreSQL installation found
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "--username",
                self.user,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",  # the cluster's creation; the server below runs with fsync on
            ],
            check=True,
            capture_output=True,
            cwd=self.root,
            **self._as,
        )
        self.port = _free_port()
        log = (self.root / "postgres.log").open("wb")
        self._process = subprocess.Popen(  # noqa: S603 - as above
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            **self._as,
        )
        log.close()
        self._wait_ready()
        import psycopg

        admin = f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def _wait_ready(self) -> None:
        import psycopg

        assert self._process is not None
        deadline = time.monotonic() + _TIMEOUT
        admin = f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited at start:\n{self.server_log()}")
            try:
                with psycopg.connect(admin, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start:\n{self.server_log()}") from None
                time.sleep(0.05)

    def server_log(self) -> str:
        """What the server wrote so far."""
        try:
            return (self.root / "postgres.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT) and remove the cluster."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_postgres(bindir: Path) -> Iterator[PostgresCluster]:
    """A started cluster, stopped and removed on exit."""
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def fresh_database(url: str) -> str:
    """Create an empty database on the server of ``url``; return the URL of the new one."""
    import uuid

    import psycopg

    name = f"euccs_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"
