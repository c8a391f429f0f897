"""Control-room API of a national gateway: HTTPS with mutual TLS, JSON, Server-Sent Events.

* :mod:`gateway.api.settings` - the ``[api]`` configuration table (:func:`parse_api`).
* :mod:`gateway.api.server` - :func:`~gateway.api.server.serve_api` starts the listeners.
* :mod:`gateway.api.app` - the aiohttp application (routes, authentication, errors).
* :mod:`gateway.api.recorder` - the gateway observer behind the message log, the alerts, the
  event stream, the metrics and the audit trail.
* :mod:`gateway.api.openapi` - the OpenAPI 3.1 document served at ``/openapi.json``.

See ``docs/api.md``. This package imports nothing from :mod:`gateway.node` at import time of
``gateway.api`` itself, so ``gateway.config`` may import :mod:`gateway.api.settings`.
"""

from __future__ import annotations

from gateway.api.settings import ApiSettings, parse_api

__all__ = ["ApiSettings", "parse_api"]
