"""The OpenAPI document matches the application's routes; its examples match its schemas."""

from __future__ import annotations

import re
from typing import Any

from gateway.api.openapi import openapi_document
from tests.gateway.api.conftest import Api

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def check(value: Any, schema: dict[str, Any], document: dict[str, Any], path: str = "$") -> None:
    """Structural validation: the subset of JSON Schema the document uses."""
    schema = _resolve(schema, document)
    if "allOf" in schema:
        for part in schema["allOf"]:
            check(value, part, document, path)
    if "oneOf" in schema:
        matches = 0
        for option in schema["oneOf"]:
            try:
                check(value, option, document, path)
                matches += 1
            except AssertionError:
                pass
        assert matches == 1, f"{path}: {value!r} matches {matches} of oneOf"
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert any(_is(value, k) for k in kinds), f"{path}: {value!r} is not {kinds}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if isinstance(value, str) and "pattern" in schema:
        assert re.search(schema["pattern"], value), f"{path}: {value!r} !~ {schema['pattern']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{path}: missing {key}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                check(item, properties[key], document, f"{path}.{key}")
            elif extra is False:
                raise AssertionError(f"{path}: unexpected {key}")
            elif isinstance(extra, dict):
                check(item, extra, document, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            check(item, schema["items"], document, f"{path}[{index}]")


def _routes(api: Api) -> set[tuple[str, str]]:
    routes = set()
    for route in api.server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = str(info.get("path") or info.get("formatter"))
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)
        routes.add((route.method.lower(), path))
    return routes


async def test_every_route_is_documented_and_every_documented_route_exists(api: Api) -> None:
    status, document = await api.get("/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.1")
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert _routes(api) == documented


def test_document_structure_and_examples() -> None:
    document = openapi_document(console=True)
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        assert path.startswith("/")
        for method, operation in operations.items():
            assert method in ("get", "post")
            assert operation["summary"] and operation["responses"]
            for code, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", code)
                assert response["description"]
                for media in response.get("content", {}).values():
                    if "schema" in media:
                        _resolve(media["schema"], document)  # every $ref resolves
            placeholders = set(re.findall(r"\{(\w+)\}", path))
            params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert placeholders == params, path
    examples = 0
    for name, schema in schemas.items():
        if "example" in schema:
            check(schema["example"], schema, document, name)
            examples += 1
    assert examples >= 6


async def test_live_responses_match_their_schemas(api: Api) -> None:
    _, document = await api.get("/openapi.json")
    _, body = await api.post(
        "/api/v1/messages", {"to": {"group": "xb.kehl-strasbourg"}, "emergency": {}}
    )
    check(body, {"$ref": "#/components/schemas/Accepted"}, document)
    await api.wait_state(body["message_id"], "forwarded")
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/api/v1/units", {"type": "array", "items": {"$ref": "#/components/schemas/Unit"}}),
        ("/api/v1/groups", {"type": "array", "items": {"$ref": "#/components/schemas/Group"}}),
        (
            "/api/v1/messages",
            {"type": "array", "items": {"$ref": "#/components/schemas/MessageSummary"}},
        ),
        (f"/api/v1/messages/{body['message_id']}", {"$ref": "#/components/schemas/MessageDetail"}),
        ("/api/v1/alerts", {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}}),
        ("/api/v1/links", {"$ref": "#/components/schemas/Links"}),
        ("/healthz", {"$ref": "#/components/schemas/Health"}),
        ("/readyz", {"$ref": "#/components/schemas/Health"}),
    ]
    for path, schema in cases:
        status, value = await api.get(path)
        assert status == 200, path
        check(value, schema, document, path)
    _, error = await api.get("/api/v1/messages/zz")
    check(error, {"$ref": "#/components/schemas/Error"}, document)
