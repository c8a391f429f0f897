"""Strict request validation: every refusal is JSON with a code and names the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.api.conftest import Api

FR_UNIT = "fr.sdis67.vsav-strasbourg-1"


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        ([1, 2], 400, "invalid_body", ""),
        ({"text": "x"}, 400, "invalid_body", "to"),
        ({"to": {"unit": FR_UNIT}, "text": "x", "colour": "red"}, 400, "invalid_body", "colour"),
        ({"to": {"unit": 42}, "text": "x"}, 400, "invalid_body", "to.unit"),
        ({"to": {"unit": FR_UNIT, "group": "g"}, "text": "x"}, 400, "invalid_body", "to"),
        ({"to": {"person": FR_UNIT}, "text": "x"}, 400, "invalid_body", "to.person"),
        ({"to": {"unit": FR_UNIT}}, 400, "invalid_body", "text|status|emergency"),
        (
            {"to": {"unit": FR_UNIT}, "text": "x", "status": "on-scene"},
            400,
            "invalid_body",
            "text|status|emergency",
        ),
        ({"to": {"unit": FR_UNIT}, "text": ""}, 400, "invalid_body", "text"),
        ({"to": {"unit": FR_UNIT}, "text": 5}, 400, "invalid_body", "text"),
        (
            {"to": {"unit": FR_UNIT}, "text": "x", "priority": "urgent"},
            400,
            "invalid_body",
            "priority",
        ),
        ({"to": {"unit": FR_UNIT}, "emergency": {"lat": 48.5}}, 400, "invalid_body", "emergency"),
        (
            {"to": {"unit": FR_UNIT}, "emergency": {"lat": 95, "lon": 7}},
            400,
            "invalid_body",
            "emergency.lat",
        ),
        (
            {"to": {"unit": FR_UNIT}, "emergency": {"lat": True, "lon": 7}},
            400,
            "invalid_body",
            "emergency.lat",
        ),
        (
            {"to": {"unit": FR_UNIT}, "emergency": {}, "priority": "routine"},
            400,
            "invalid_body",
            "priority",
        ),
        ({"to": {"unit": "fr.sdis67.nobody"}, "text": "x"}, 422, "unknown_unit", "to.unit"),
        ({"to": {"group": "xb.nowhere"}, "text": "x"}, 422, "unknown_group", "to.group"),
        ({"to": {"unit": "de.bos.rtw-kehl-1"}, "text": "x"}, 422, "not_cross_border", "to.unit"),
        ({"to": {"unit": FR_UNIT}, "status": "dancing"}, 422, "unknown_status", "status"),
    ],
)
async def test_invalid_bodies_are_refused_naming_the_field(
    api: Api, body: Any, status: int, error: str, field: str
) -> None:
    got_status, got = await api.post("/api/v1/messages", body)
    assert (got_status, got["error"], got.get("field")) == (status, error, field)
    assert isinstance(got["detail"], str) and got["detail"]


async def test_malformed_json_is_400(api: Api) -> None:
    async with (
        api.session() as s,
        s.post(
            "/api/v1/messages", data=b'{"to": ', headers={"Content-Type": "application/json"}
        ) as r,
    ):
        assert r.status == 400
        body = await r.json()
    assert body["error"] == "malformed_json" and "line 1" in body["detail"]


async def test_wrong_content_type_is_415(api: Api) -> None:
    async with api.session() as s, s.post("/api/v1/messages", data=b"to=x") as r:
        assert r.status == 415
        assert (await r.json())["error"] == "unsupported_media_type"


async def test_oversized_body_is_413(api: Api) -> None:
    big = {"to": {"unit": FR_UNIT}, "text": "x" * (api.settings.max_body_bytes + 10)}
    status, body = await api.post("/api/v1/messages", big)
    assert (status, body["error"]) == (413, "body_too_large")


async def test_text_longer_than_the_limit_is_400(api: Api) -> None:
    status, body = await api.post("/api/v1/messages", {"to": {"unit": FR_UNIT}, "text": "y" * 1001})
    assert (status, body["field"]) == (400, "text")


async def test_unknown_and_malformed_message_ids(api: Api) -> None:
    status, body = await api.get(f"/api/v1/messages/{'ab' * 16}")
    assert (status, body["error"]) == (404, "not_found")
    status, body = await api.get("/api/v1/messages/not-an-id")
    assert (status, body["error"], body["field"]) == (400, "invalid_id", "message_id")


@pytest.mark.parametrize(
    "query", [{"limit": "0"}, {"limit": "x"}, {"limit": "1001"}, {"page": "2"}]
)
async def test_bad_message_log_queries(api: Api, query: dict[str, str]) -> None:
    status, body = await api.get("/api/v1/messages", params=query)
    assert (status, body["error"]) == (400, "invalid_query")


async def test_unknown_route_and_method_are_json(api: Api) -> None:
    status, body = await api.get("/api/v1/nothing")
    assert (status, body["error"]) == (404, "not_found")
    async with api.session() as s, s.delete("/api/v1/units") as r:
        assert r.status == 405
        assert (await r.json())["error"] == "method_not_allowed"


async def test_refusals_are_counted_by_reason(api: Api) -> None:
    await api.post("/api/v1/messages", {"to": {"unit": "fr.sdis67.nobody"}, "text": "x"})
    async with api.session() as s, s.get("/metrics") as r:
        text = await r.text()
    assert 'euccs_rejected_inputs_total{reason="unknown_unit",source="api"} 1' in text


_TO_FR = '{"to": {"unit": "' + FR_UNIT + '"}, '


async def _raw(api: Api, method: str, path: str, data: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    async with (
        api.session() as session,
        session.request(method, path, data=data, headers=headers) as response,
    ):
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("method", "path", "data", "status", "field"),
    [
        ("GET", "/api/v1/messages?limit=%C2%B2", None, 400, "limit"),  # a digit int() refuses
        ("GET", "/api/v1/messages?limit=" + "1" * 4301, None, 400, "limit"),
        ("POST", "/api/v1/messages", "[" * 5000 + "]" * 5000, 400, None),
        (
            "POST",
            "/api/v1/messages",
            _TO_FR + '"emergency": {"lat": 1' + "0" * 400 + ', "lon": 7}}',
            400,
            "emergency.lat",
        ),
        (
            "POST",
            "/api/v1/messages",
            _TO_FR + '"text": "hi \\ud800"}',
            400,
            "text",
        ),
        ("GET", "/a%00b", None, 404, None),
    ],
    ids=["odd-digit", "long-digits", "deep-json", "huge-integer", "lone-surrogate", "nul-path"],
)
async def test_hostile_requests_get_a_json_refusal_not_a_500(
    api: Api, method: str, path: str, data: str | None, status: int, field: str | None
) -> None:
    got, body = await _raw(api, method, path, data)
    assert got == status
    assert body["error"]
    if field is not None:
        assert body["field"] == field
    assert api.server.recorder.api_rejections["internal_error"] == 0


@pytest.mark.parametrize("text", ["x\r[fr.sdis67.chef] Abbruch", "\u202eetrop", "a\x85b"])
async def test_texts_that_could_rewrite_what_a_radio_shows_are_refused(api: Api, text: str) -> None:
    status, body = await api.post("/api/v1/messages", {"to": {"unit": FR_UNIT}, "text": text})
    assert (status, body["field"]) == (400, "text")
