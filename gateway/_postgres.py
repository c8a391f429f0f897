"""What the PostgreSQL journal and the lease store share: psycopg import, pool, URL redaction.

psycopg is imported only when a store is opened (:func:`require_psycopg`), so the
gateway runs without the ``postgres`` extra as long as no PostgreSQL store is configured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from protocols.errors import ConfigError

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = ["PooledStore", "liveness_kwargs", "open_pool", "redact_url", "require_psycopg"]

_Callback = Callable[["psycopg.Connection[Any]"], None]


def redact_url(url: str) -> str:
    """``url`` without its password (in the user part or as a ``password`` parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def liveness_kwargs(dead_after: float) -> dict[str, Any]:
    """Connection settings that notice a dead link within about ``dead_after`` seconds.

    A connection whose peer vanished without a word (a firewall dropped its state, a
    host lost power) would otherwise block the next statement until the kernel gives
    up, minutes to hours later: TCP keepalives catch it idle, ``tcp_user_timeout`` while
    data waits for an acknowledgement.
    """
    seconds = max(1.0, dead_after)
    return {
        "keepalives": 1,
        "keepalives_idle": max(1, round(seconds / 3)),
        "keepalives_interval": max(1, round(seconds / 6)),
        "keepalives_count": 3,
        "tcp_user_timeout": round(seconds * 1000),
    }


def require_psycopg(missing: str) -> None:
    """Import psycopg and psycopg_pool, or raise :class:`ConfigError` with ``missing``."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise ConfigError(missing) from exc


def open_pool(
    url: str,
    *,
    kwargs: dict[str, Any],
    setup: _Callback,
    max_size: int,
    configure: _Callback,
    name: str,
    timeout: float,
    connect_timeout: float,
    check: _Callback | None = None,
) -> psycopg_pool.ConnectionPool[psycopg.Connection[Any]]:
    """Run ``setup`` on one connection, then open a pool of 1 to ``max_size`` connections.

    Every connection is made with ``kwargs`` (the pool's in autocommit mode) and passed
    to ``configure`` when made; ``timeout`` bounds the wait for a pooled connection.

    Raises:
        psycopg.Error: ``setup`` failed, or the pool had no connection within
            ``connect_timeout + timeout`` seconds (:class:`psycopg_pool.PoolTimeout`;
            the pool is closed again).
    """
    import psycopg
    import psycopg_pool

    with psycopg.connect(url, **kwargs) as conn:
        setup(conn)
    pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
        url,
        kwargs={**kwargs, "autocommit": True},
        min_size=1,
        max_size=max_size,
        open=False,
        configure=configure,
        check=check,
        name=name,
        timeout=timeout,
    )
    try:
        pool.open(wait=True, timeout=connect_timeout + timeout)
    except psycopg_pool.PoolTimeout:
        pool.close()
        raise
    return pool


class PooledStore:
    """A store on a connection pool: where it is (without the password), and closing it."""

    _location: str
    _pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]]

    @property
    def location(self) -> str:
        """The database URL without its password (and, for a journal, its schema)."""
        return self._location

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()
