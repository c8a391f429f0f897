"""The web console in real headless Chromium, against a running federation and its API.

Two gateways (DE, FR) on simulated TETRA networks, the DE gateway's HTTPS API with mutual
TLS (certificates minted per run), and the system Chromium driven by Playwright, which
presents the DE control room's client certificate (``client_certificates``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, async_playwright, expect

import certs
from gateway.api.server import ApiServer, serve_api
from gateway.api.settings import ApiSettings
from tests.gateway.federation import (
    ALIAS_OF_DE_RTW,
    ALIAS_OF_FR_VSAV,
    DE_RTW,
    FR_VSAV,
    Federation,
    federation,
    texts,
)

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "gateway" / "console"
ARTIFACTS = ROOT / "artifacts"

RTW = "de.bos.rtw-kehl-1"
VSAV = "fr.sdis67.vsav-strasbourg-1"


@dataclass
class Rig:
    fed: Federation
    pki: certs.Federation
    api: ApiServer
    page: Page
    errors: list[str] = field(default_factory=list)

    async def api_get(self, path: str) -> Any:
        """GET from the API as the DE control room, verifying the gateway against the bundle."""
        console = self.pki.consoles["DE"]
        context = certs.client_context(console.cert, console.key, self.pki.bundle_dir)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.api.url}{path}", ssl=context) as response:
                assert response.status == 200, await response.text()
                return await response.json()


@contextlib.asynccontextmanager
async def console_rig(tmp_path: Path, chromium: str) -> AsyncIterator[Rig]:
    pki = certs.mint_federation(tmp_path / "pki", ["DE", "FR"], now=datetime.now(UTC))
    gateway = pki.gateways["DE"]
    settings = ApiSettings(
        host="127.0.0.1",
        port=0,
        cert=gateway.cert,
        key=gateway.key,
        bundle=pki.bundle_dir,
        console_dir=CONSOLE,
    )
    state = tmp_path / "state"
    state.mkdir()
    console = pki.consoles["DE"]
    async with federation(state) as fed, serve_api(fed.de, settings, keepalive=1.0) as api:
        async with async_playwright() as playwright:
            # The system Chromium: Playwright downloads no browser of its own.
            browser = await playwright.chromium.launch(executable_path=chromium)
            try:
                context = await browser.new_context(
                    viewport={"width": 1280, "height": 800},
                    # The gateway's certificate chains to the federation CA, which this
                    # browser profile does not trust, and names no host: the browser cannot
                    # check it. Rig.api_get checks the same server against the bundle.
                    ignore_https_errors=True,
                    client_certificates=[
                        {
                            "origin": api.url,
                            "certPath": str(console.cert),
                            "keyPath": str(console.key),
                        }
                    ],
                )
                page = await context.new_page()
                rig = Rig(fed, pki, api, page)
                page.on("pageerror", lambda exc: rig.errors.append(f"page error: {exc}"))
                page.on(
                    "console",
                    lambda msg: (
                        rig.errors.append(f"console {msg.type}: {msg.text}")
                        if msg.type == "error"
                        else None
                    ),
                )
                yield rig
                await context.close()
            finally:
                await browser.close()


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_console_live_units_delivery_and_emergency(
    tmp_path: Path, chromium_path: str
) -> None:
    async with console_rig(tmp_path, chromium_path) as rig:
        page, fed = rig.page, rig.fed
        await page.goto(f"{rig.api.url}/")
        await expect(page).to_have_title(re.compile("EUCCS"))

        # Initial state from the GET endpoints, then the live stream.
        await expect(page.locator(f'#unit-rows tr[data-unit="{RTW}"]')).to_be_visible()
        await expect(page.locator(f'#unit-rows tr[data-unit="{VSAV}"]')).to_be_visible()
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        await expect(page.locator("#identity")).to_have_text("euccs://DE/console/console-1")
        await expect(page.locator('#links article[data-link="FR"]')).to_have_attribute(
            "data-state", "up"
        )
        await expect(page.locator('#links article[data-link="tetra-de"]')).to_be_visible()
        await expect(page.locator('#links [data-priority="emergency"]')).to_have_count(2)

        # Radios on both sides report positions: presence (colour and text) and the map.
        await fed.sim_de.send_location(DE_RTW, ALIAS_OF_FR_VSAV, 48.5731, 7.8142)
        await fed.sim_fr.send_location(FR_VSAV, ALIAS_OF_DE_RTW, 48.5790, 7.7560)
        rtw_row = page.locator(f'#unit-rows tr[data-unit="{RTW}"]')
        await expect(rtw_row).to_have_attribute("data-availability", "ONLINE", timeout=10_000)
        await expect(rtw_row.locator(".presence")).to_have_text("ONLINE")
        await expect(page.locator(f'#map g.unit-marker[data-unit="{RTW}"]')).to_have_count(
            1, timeout=10_000
        )

        # Compose from the keyboard: "/" focuses the destination, Ctrl+Enter sends.
        await page.locator("body").click(position={"x": 5, "y": 790})
        await page.keyboard.press("/")
        await expect(page.locator("#compose-destination")).to_be_focused()
        await page.select_option("#compose-destination", f"unit:{VSAV}")
        text = "Need a second ambulance at the Europe bridge (console test)"
        await page.locator("#compose-text").fill(text)
        await page.keyboard.press("Control+Enter")
        feedback = page.locator("#compose-feedback")
        await expect(feedback).to_have_attribute("data-kind", "ok")
        await expect(feedback).to_contain_text("Accepted for VSAV Strasbourg 1")
        message_id = await feedback.get_attribute("data-message-id")
        assert message_id and re.fullmatch("[0-9a-f]{32}", message_id), message_id
        row = page.locator(f'#log-rows tr[data-message-id="{message_id}"]')
        await expect(row).to_have_attribute("data-state", "delivered", timeout=15_000)
        await expect(row.locator(".state")).to_have_text(["accepted", "forwarded", "delivered"])
        assert any(text in t.text for t in texts(fed.sim_fr, "1001")), texts(fed.sim_fr, "1001")

        # A French radio raises an emergency towards a German unit: the banner appears ...
        await fed.sim_fr.send_status(FR_VSAV, ALIAS_OF_DE_RTW, 0)
        banner = page.locator("#alerts")
        await expect(banner).to_be_visible(timeout=10_000)
        alert = banner.locator("li.alert")
        await expect(alert).to_have_count(1)
        await expect(alert).to_contain_text("VSAV Strasbourg 1")
        await expect(page.locator("#alerts-live")).to_contain_text("Emergency")
        alert_id = await alert.get_attribute("data-alert-id")
        assert alert_id
        await page.wait_for_timeout(300)  # let the log settle for the picture
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "console.png"))

        # ... and stays (a refresh of every view must not clear it) until acknowledged,
        # from the keyboard: "a" focuses the oldest alert's button, Enter presses it.
        await page.wait_for_timeout(1_500)
        await expect(banner).to_be_visible()
        await page.keyboard.press("Escape")  # leave the compose text field
        await page.keyboard.press("a")
        ack = alert.locator("button.ack")
        await expect(ack).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(banner).to_be_hidden()

        alerts = await rig.api_get("/api/v1/alerts")
        acknowledged = [a for a in alerts if a["alert_id"] == alert_id]
        assert acknowledged, alerts
        assert acknowledged[0]["acknowledged_by"] == "euccs://DE/console/console-1"

        # A reload starts from the GET endpoints alone: the acknowledged alert stays away.
        await page.reload()
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        await expect(
            page.locator(f'#log-rows tr[data-message-id="{message_id}"]')
        ).to_have_attribute("data-state", "delivered")
        await expect(banner).to_be_hidden()
        assert rig.errors == []


def test_console_is_self_contained_and_never_injects_html() -> None:
    files = {p.name: p.read_text(encoding="utf-8") for p in CONSOLE.iterdir() if p.is_file()}
    assert {"index.html", "app.js", "style.css", "map-outline.json"} <= set(files)
    for name, content in files.items():
        urls = re.findall(r"https?://[^\s\"')]+", content)
        assert [u for u in urls if u != "http://www.w3.org/2000/svg"] == [], name
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in content, f"{name} uses {sink}"
    assert "<script>" not in files["index.html"]  # no inline script (strict CSP possible)
