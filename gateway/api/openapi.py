"""The OpenAPI 3.1 document of the control-room API, served at ``/openapi.json``.

Hand-written, next to the handlers it describes; ``tests/gateway/api/test_openapi.py`` checks
that every route of the application is documented and every documented route exists, and
that the examples match their schemas.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_TIME = {"type": "string", "format": "date-time", "examples": ["2025-01-31T12:00:00.123Z"]}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_HEX_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_PRIORITY = {"type": "string", "enum": ["routine", "high", "imminent_peril", "emergency"]}
_AVAILABILITY = {"type": "string", "enum": ["online", "stale", "offline", "unknown"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_AUTH_ERRORS = {
    "401": _error("No usable client certificate identity."),
    "403": _error("Wrong role, or a console of another country."),
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "description": "Machine-readable code."},
            "detail": {"description": "Human-readable explanation (names the field)."},
            "field": {"type": "string", "description": "The offending body field, if any."},
            "ref": {
                "type": "string",
                "description": "Reference of the gateway log line with the full cause, when "
                "the detail leaves it out (journal, certificate or internal failures).",
            },
        },
        "example": {
            "error": "invalid_body",
            "detail": "to.unit: expected a string, got number",
            "field": "to.unit",
        },
    },
    "Location": {
        "type": "object",
        "required": ["lat", "lon", "at"],
        "additionalProperties": False,
        "properties": {
            "lat": {"type": "number"},
            "lon": {"type": "number"},
            "at": _TIME_OR_NULL,
        },
    },
    "Unit": {
        "type": "object",
        "required": [
            "unit",
            "nation",
            "label",
            "availability",
            "groups",
            "location",
            "gateway",
            "last_heard",
        ],
        "additionalProperties": False,
        "properties": {
            "unit": {"type": "string"},
            "nation": {"type": "string", "pattern": "^[A-Z]{2}$"},
            "label": {"type": "string"},
            "availability": _AVAILABILITY,
            "groups": {"type": "array", "items": {"type": "string"}},
            "location": {"oneOf": [_ref("Location"), {"type": "null"}]},
            "gateway": {"type": ["string", "null"]},
            "last_heard": _TIME_OR_NULL,
            "local": {"type": "boolean", "description": "One of this gateway's units."},
        },
        "example": {
            "unit": "fr.sdis67.vsav-strasbourg-1",
            "nation": "FR",
            "label": "VSAV Strasbourg 1",
            "availability": "online",
            "groups": ["xb.kehl-strasbourg"],
            "location": {"lat": 48.58, "lon": 7.75, "at": "2025-01-31T12:00:00.123Z"},
            "gateway": "gw-fr-strasbourg",
            "last_heard": "2025-01-31T12:00:00.123Z",
            "local": False,
        },
    },
    "Group": {
        "type": "object",
        "required": ["group", "nations", "local", "members"],
        "additionalProperties": False,
        "properties": {
            "group": {"type": "string"},
            "nations": {"type": "array", "items": {"type": "string"}},
            "local": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["adapter", "gssi"],
                    "properties": {"adapter": {"type": "string"}, "gssi": {"type": "string"}},
                },
            },
            "members": {"type": "array", "items": {"type": "string"}},
        },
        "example": {
            "group": "xb.kehl-strasbourg",
            "nations": ["DE", "FR"],
            "local": [{"adapter": "tetra-de", "gssi": "3001"}],
            "members": ["de.bos.pol-offenburg-3"],
        },
    },
    "MessageRequest": {
        "type": "object",
        "description": "Exactly one of text, status and emergency.",
        "required": ["to"],
        "additionalProperties": False,
        "properties": {
            "to": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["unit"],
                        "additionalProperties": False,
                        "properties": {"unit": {"type": "string"}},
                    },
                    {
                        "type": "object",
                        "required": ["group"],
                        "additionalProperties": False,
                        "properties": {"group": {"type": "string"}},
                    },
                ]
            },
            "priority": {
                **_PRIORITY,
                "description": "Default routine; emergency for an emergency (the only one "
                "allowed for it).",
            },
            "text": {"type": "string", "minLength": 1, "maxLength": 1000},
            "status": {
                "type": "string",
                "pattern": "^[a-z0-9][a-z0-9-]{0,63}$",
                "description": "A federation status code of our codebooks, e.g. on-scene.",
            },
            "emergency": {
                "type": "object",
                "additionalProperties": False,
                "description": "An emergency alert, with the position if known (both or neither).",
                "properties": {
                    "lat": {"type": "number", "minimum": -90, "maximum": 90},
                    "lon": {"type": "number", "minimum": -180, "maximum": 180},
                },
            },
        },
        "example": {
            "to": {"unit": "fr.sdis67.vsav-strasbourg-1"},
            "priority": "high",
            "text": "Second ambulance needed at the Europe bridge",
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["message_id"],
        "properties": {"message_id": _HEX_ID},
        "example": {"message_id": "0f3c9a2e8d6b4f1a9c7e5d3b1a0f2e4c"},
    },
    "StateChange": {
        "type": "object",
        "required": ["state", "at", "gateway"],
        "description": "Plus partner, confirmation, reason or unit where relevant.",
        "properties": {
            "state": {
                "type": "string",
                "enum": [
                    "accepted",
                    "forwarded",
                    "received",
                    "delivered",
                    "read",
                    "failed",
                    "refused",
                    "replayed",
                ],
            },
            "at": _TIME,
            "gateway": {"type": "string"},
            "partner": {"type": "string"},
            "confirmation": {"type": "string"},
            "reason": {"type": "string"},
            "unit": {"type": "string"},
        },
    },
    "MessageSummary": {
        "type": "object",
        "required": [
            "message_id",
            "time",
            "direction",
            "origin",
            "destination",
            "priority",
            "summary",
            "state",
            "states",
        ],
        "properties": {
            "message_id": _HEX_ID,
            "time": _TIME,
            "direction": {"type": "string", "enum": ["outbound", "inbound", "unknown"]},
            "origin": {"type": ["string", "null"]},
            "destination": {"type": ["string", "null"]},
            "priority": {"type": ["string", "null"]},
            "summary": {"type": ["string", "null"]},
            "state": {"type": ["string", "null"]},
            "states": {"type": "array", "items": _ref("StateChange")},
        },
        "example": {
            "message_id": "0f3c9a2e8d6b4f1a9c7e5d3b1a0f2e4c",
            "time": "2025-01-31T12:00:00.123Z",
            "direction": "outbound",
            "origin": "de.controlroom.console-1",
            "destination": "fr.sdis67.vsav-strasbourg-1",
            "priority": "routine",
            "summary": "text (44 chars)",
            "state": "delivered",
            "states": [
                {"state": "accepted", "at": "2025-01-31T12:00:00.123Z", "gateway": "gw-de"},
                {
                    "state": "delivered",
                    "at": "2025-01-31T12:00:00.456Z",
                    "gateway": "gw-de",
                    "confirmation": "CONFIRMATION_UNIT",
                },
            ],
        },
    },
    "Hop": {
        "type": "object",
        "required": ["gateway", "nation", "received_at", "forwarded_at"],
        "properties": {
            "gateway": {"type": "string"},
            "nation": {"type": "string"},
            "received_at": _TIME_OR_NULL,
            "forwarded_at": _TIME_OR_NULL,
        },
    },
    "MessageDetail": {
        "allOf": [
            _ref("MessageSummary"),
            {
                "type": "object",
                "required": ["body", "trace"],
                "properties": {
                    "body": {"type": ["string", "null"]},
                    "trace": {"type": "array", "items": _ref("Hop")},
                },
            },
        ]
    },
    "Alert": {
        "type": "object",
        "required": [
            "alert_id",
            "message_id",
            "raised_at",
            "expires_at",
            "direction",
            "origin",
            "target",
            "location",
            "gateway",
            "acknowledged",
            "acknowledged_by",
            "acknowledged_at",
        ],
        "properties": {
            "alert_id": _HEX_ID,
            "message_id": _HEX_ID,
            "raised_at": _TIME,
            "expires_at": _TIME,
            "direction": {"type": "string", "enum": ["outbound", "inbound"]},
            "origin": {"type": ["string", "null"]},
            "target": {
                "type": "object",
                "properties": {"unit": {"type": "string"}, "group": {"type": "string"}},
            },
            "location": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["lat", "lon"],
                        "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                    },
                    {"type": "null"},
                ]
            },
            "gateway": {"type": "string"},
            "acknowledged": {"type": "boolean"},
            "acknowledged_by": {"type": ["string", "null"]},
            "acknowledged_at": _TIME_OR_NULL,
        },
        "example": {
            "alert_id": "0f3c9a2e8d6b4f1a9c7e5d3b1a0f2e4c",
            "message_id": "0f3c9a2e8d6b4f1a9c7e5d3b1a0f2e4c",
            "raised_at": "2025-01-31T12:00:00.123Z",
            "expires_at": "2025-01-31T13:00:00.123Z",
            "direction": "inbound",
            "origin": "fr.sdis67.vsav-strasbourg-1",
            "target": {"group": "xb.kehl-strasbourg"},
            "location": {"lat": 48.57, "lon": 7.79},
            "gateway": "gw-de-kehl",
            "acknowledged": True,
            "acknowledged_by": "euccs://DE/console/console-1",
            "acknowledged_at": "2025-01-31T12:00:05.000Z",
        },
    },
    "Canary": {
        "type": ["object", "null"],
        "properties": {
            "state": {"type": "string", "enum": ["unknown", "healthy", "degraded"]},
            "rtt_ms": {"type": ["number", "null"]},
            "sent": {"type": "integer"},
            "returned": {"type": "integer"},
        },
    },
    "Queue": {
        "type": "object",
        "required": ["depths", "messages", "bytes"],
        "properties": {
            "depths": {
                "type": "object",
                "description": "Messages waiting per priority (routine, high, "
                "imminent_peril, emergency).",
                "additionalProperties": {"type": "integer"},
            },
            "messages": {"type": "integer"},
            "bytes": {"type": "integer"},
        },
    },
    "Links": {
        "type": "object",
        "required": ["gateway", "nation", "partners", "adapters", "journal"],
        "properties": {
            "gateway": {"type": "string"},
            "nation": {"type": "string"},
            "partners": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["nation", "link", "canary", "queue", "in_flight", "backlog"],
                    "properties": {
                        "nation": {"type": "string"},
                        "link": {"type": "string", "enum": ["up", "down"]},
                        "canary": _ref("Canary"),
                        "queue": _ref("Queue"),
                        "in_flight": {"type": "integer"},
                        "backlog": {"type": "integer"},
                    },
                },
            },
            "adapters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "link", "canary", "queue", "backlog"],
                    "properties": {
                        "name": {"type": "string"},
                        "link": {
                            "type": "string",
                            "description": "connecting, connected, transient_disconnect, "
                            "bad_credentials, ...",
                        },
                        "canary": _ref("Canary"),
                        "queue": _ref("Queue"),
                        "backlog": {"type": "integer"},
                    },
                },
            },
            "journal": {
                "type": "object",
                "required": ["open", "backlog"],
                "properties": {
                    "open": {"type": "boolean"},
                    "backlog": {"type": ["integer", "null"]},
                },
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "ready", "not ready"]},
            "gateway": {"type": "string"},
            "nation": {"type": "string"},
            "member": {
                "type": "string",
                "description": "The gateway's federation member id: its country, or e.g. "
                "DE-2 for a gateway of a split country.",
            },
            "uptime_s": {"type": "number"},
            "reasons": {"type": "array", "items": {"type": "string"}},
        },
        "example": {"status": "not ready", "reasons": ["adapter tetra-de is connecting"]},
    },
    "Event": {
        "type": "object",
        "required": ["type", "id"],
        "description": "One Server-Sent Event's data. Fields besides type and id depend on "
        "the type: hello (gateway, nation, identity); presence (unit, availability, "
        "previous, gateway, at); message (message_id, state, at, gateway, direction, origin, "
        "destination, priority, summary, partner/confirmation/reason); alert (the Alert "
        "object); alert_ack (alert_id, by, at); alert_cancelled (alert_id); link (path, "
        "kind adapter|canary, state, reason, at).",
        "properties": {
            "type": {
                "type": "string",
                "enum": [
                    "hello",
                    "presence",
                    "message",
                    "alert",
                    "alert_ack",
                    "alert_cancelled",
                    "link",
                ],
            },
            "id": {"type": "integer"},
        },
        "example": {
            "type": "presence",
            "id": 7,
            "unit": "fr.sdis67.vsav-strasbourg-1",
            "availability": "online",
            "previous": None,
            "gateway": "gw-fr-strasbourg",
            "at": "2025-01-31T12:00:00.123Z",
        },
    },
}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


def _paths(console: bool) -> dict[str, Any]:
    message_id = {
        "name": "message_id",
        "in": "path",
        "required": True,
        "schema": _HEX_ID,
    }
    paths: dict[str, Any] = {
        "/api/v1/units": {
            "get": _op(
                "Our units, partner units we know (aliases, presence), with presence.",
                {"200": _json({"type": "array", "items": _ref("Unit")}, "Units."), **_AUTH_ERRORS},
            )
        },
        "/api/v1/groups": {
            "get": _op(
                "The configured cross-border groups.",
                {
                    "200": _json({"type": "array", "items": _ref("Group")}, "Groups."),
                    **_AUTH_ERRORS,
                },
            )
        },
        "/api/v1/messages": {
            "get": _op(
                "Recent messages seen by this gateway, newest first.",
                {
                    "200": _json(
                        {"type": "array", "items": _ref("MessageSummary")}, "The message log."
                    ),
                    "400": _error("limit is not an integer between 1 and 1000."),
                    **_AUTH_ERRORS,
                },
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    }
                ],
            ),
            "post": _op(
                "Send a text, a status or an emergency from the control room.",
                {
                    "202": _json(_ref("Accepted"), "Taken into custody (journaled)."),
                    "400": _error("Malformed JSON, unknown field, wrong type, missing field."),
                    **_AUTH_ERRORS,
                    "413": _error("Body larger than api.max_body_bytes."),
                    "415": _error("Content-Type is not application/json."),
                    "422": _error(
                        "Unknown unit, group or status code, or a destination this gateway "
                        "cannot reach."
                    ),
                    "503": _error("The journal cannot take custody now."),
                },
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("MessageRequest")}},
                },
            ),
        },
        "/api/v1/messages/{message_id}": {
            "get": _op(
                "One message: its states with times and its hop trace.",
                {
                    "200": _json(_ref("MessageDetail"), "The message."),
                    "400": _error("Not a 32-digit hex message id."),
                    **_AUTH_ERRORS,
                    "404": _error("Not in the message log."),
                },
                parameters=[message_id],
            )
        },
        "/api/v1/alerts": {
            "get": _op(
                "Outstanding emergency alerts, newest first.",
                {
                    "200": _json({"type": "array", "items": _ref("Alert")}, "Alerts."),
                    **_AUTH_ERRORS,
                },
            )
        },
        "/api/v1/alerts/{alert_id}/ack": {
            "post": _op(
                "Acknowledge an alert (idempotent; the first acknowledgement is kept).",
                {
                    "200": _json(_ref("Alert"), "The alert, acknowledged."),
                    "400": _error("Not a 32-digit hex alert id."),
                    **_AUTH_ERRORS,
                    "404": _error("No such alert."),
                },
                parameters=[{**message_id, "name": "alert_id"}],
            )
        },
        "/api/v1/links": {
            "get": _op(
                "Per partner and per adapter: link and canary state, queues, backlog.",
                {"200": _json(_ref("Links"), "Links."), **_AUTH_ERRORS},
            )
        },
        "/api/v1/events": {
            "get": _op(
                "Live events as Server-Sent Events: one JSON object (see Event) per data "
                "line, with an id; comment lines keep the connection alive.",
                {
                    "200": {
                        "description": "An endless event stream.",
                        "content": {"text/event-stream": {"schema": _ref("Event")}},
                    },
                    **_AUTH_ERRORS,
                },
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document.",
                {"200": _json({"type": "object"}, "OpenAPI 3.1."), **_AUTH_ERRORS},
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (text format 0.0.4).",
                {
                    "200": {
                        "description": "The exposition.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_AUTH_ERRORS,
                },
            )
        },
        "/healthz": {
            "get": _op(
                "Liveness: the process and its event loop answer.",
                {"200": _json(_ref("Health"), "Alive."), **_AUTH_ERRORS},
            )
        },
        "/readyz": {
            "get": _op(
                "Readiness: journal open, adapters connected, federation links up and not "
                "degraded.",
                {
                    "200": _json(_ref("Health"), "Ready."),
                    **_AUTH_ERRORS,
                    "503": _json(_ref("Health"), "Not ready, with the reasons."),
                },
            )
        },
    }
    if console:
        html = {"description": "A file of the web console.", "content": {"*/*": {}}}
        paths["/"] = {"get": _op("The web console (index.html).", {"200": html, **_AUTH_ERRORS})}
        paths["/{path}"] = {
            "get": _op(
                "A static file of the web console.",
                {"200": html, **_AUTH_ERRORS, "404": _error("No such file.")},
                parameters=[
                    {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
            )
        }
    return paths


def openapi_document(*, console: bool, server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document (``console``: the web console's static routes are served)."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "euccs gateway control-room API",
            "version": "1.0.0",
            "description": "JSON API of one national gateway for its country's control rooms. "
            "HTTPS with mutual TLS: a console certificate (role console) of the gateway's own "
            "country. Errors are {error, detail[, field][, ref]}. See docs/api.md.",
        },
        "paths": _paths(console),
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"mutualTLS": {"type": "mutualTLS"}},
        },
        "security": [{"mutualTLS": []}],
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
