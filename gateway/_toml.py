"""A strict reader over parsed TOML tables: every error names the full key path.

``Table(data, "adapters[0]")`` wraps one table. Each accessor takes a key, checks
its type and returns it; :meth:`Table.finish` raises on keys nobody asked for,
suggesting the closest known key, so a typo never silently falls back to a
default.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from typing import Any

from protocols.errors import ConfigError

__all__ = ["Table"]

_MISSING: Any = object()


class Table:
    """Typed, path-aware access to one TOML table."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'the file'}: expected a table, got {_kind(data)}.")
        self._data: dict[str, Any] = data
        self._path = path
        self._seen: set[str] = set()
        self._known: set[str] = set()  # asked about, read or not: offered as suggestions

    def _key(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _get(self, key: str, default: Any, kind: str) -> Any:
        self._seen.add(key)
        if key in self._data:
            return self._data[key]
        if default is _MISSING:
            close = difflib.get_close_matches(key, sorted(self._data), n=1)
            hint = f" Is {close[0]!r} a misspelling of it?" if close else ""
            raise ConfigError(f"{self._key(key)}: required {kind} is missing.{hint}")
        return default

    def has(self, key: str) -> bool:
        """Return True if ``key`` is present (a key asked about is a known one)."""
        self._known.add(key)
        return key in self._data

    def string(self, key: str, default: Any = _MISSING) -> Any:
        """Return a string value."""
        value = self._get(key, default, "string")
        if value is not default and not isinstance(value, str):
            raise ConfigError(f"{self._key(key)}: expected a string, got {_kind(value)}.")
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        """Return a boolean value."""
        value = self._get(key, default, "boolean")
        if value is not default and not isinstance(value, bool):
            raise ConfigError(f"{self._key(key)}: expected true or false, got {_kind(value)}.")
        return value

    def number(self, key: str, default: Any = _MISSING, *, minimum: float = 0.0) -> Any:
        """Return a number (int or float) not below ``minimum``."""
        value = self._get(key, default, "number")
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self._key(key)}: expected a number, got {_kind(value)}.")
        if not math.isfinite(value):
            raise ConfigError(f"{self._key(key)}: expected a finite number, got {value}.")
        if value < minimum:
            raise ConfigError(f"{self._key(key)}: {value} is below the minimum {minimum}.")
        return float(value)

    def strings(self, key: str, default: Any = _MISSING) -> Any:
        """Return a list of strings."""
        value = self._get(key, default, "list of strings")
        if value is default:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self._key(key)}: expected a list of strings, got {_kind(value)}.")
        return list(value)

    def one_or_more(self, key: str) -> list[str]:
        """Return a string or a list of strings as a list (absent: empty)."""
        value = self._get(key, [], "string or list of strings")
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"{self._key(key)}: expected a string or a list of strings, got {_kind(value)}."
            )
        return list(value)

    def table(self, key: str, *, required: bool = False) -> Table:
        """Return a sub-table (an empty one when absent and not required)."""
        value = self._get(key, _MISSING if required else {}, "table")
        return Table(value, self._key(key))

    def tables(self, key: str) -> Iterator[Table]:
        """Iterate an array of tables (``[[key]]``); absent means empty."""
        value = self._get(key, [], "array of tables")
        if not isinstance(value, list):
            raise ConfigError(f"{self._key(key)}: expected an array of tables ([[{key}]]).")
        for index, item in enumerate(value):
            yield Table(item, f"{self._key(key)}[{index}]")

    def items(self) -> Iterator[tuple[str, Any]]:
        """Iterate all keys (marks them as seen)."""
        self._seen.update(self._data)
        yield from self._data.items()

    def error(self, key: str, message: str) -> ConfigError:
        """Build a ConfigError for ``key`` of this table."""
        return ConfigError(f"{self._key(key)}: {message}")

    def finish(self) -> None:
        """Raise on the first key that was never read (a typo or an unsupported option)."""
        for key in self._data:
            if key not in self._seen:
                close = difflib.get_close_matches(key, sorted(self._seen | self._known), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{self._key(key)}: unknown key.{hint}")


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
