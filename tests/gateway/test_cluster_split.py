"""A split country on two instances (``[cluster] home``): Germany runs two gateways (DE,
DE-2), each at home on one of two instances; the instance that runs DE is killed with
SIGKILL during traffic, the other takes DE over, then the killed one comes back and DE is
handed back to it, still during traffic. Real ``euccs-gw run`` processes, a real PostgreSQL
journal and a real Mosquitto broker with mutual TLS."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.tetra import TetraNetworkSimulator
from gateway.demo_configs import (
    SPLIT_ALIASES_DE,
    SPLIT_ALIASES_FR,
    SPLIT_RADIO,
    SPLIT_UNITS,
    split_config_text,
)
from loadtests._postgres import fresh_database
from protocols.errors import LinkError
from tests.gateway.federation import (
    eventually,
)
from tests.processes import (
    STORED,
    arrivals,
    log_events,
    mqtt_backbone,
    over_mqtt,
    radios_initialised,
    reports_with,
)

TTL = 3.0
KILL_AT = 40
AFTER_TAKEOVER = 30
NAMES = {"DE": "gw-de", "DE-2": "gw-de-2", "FR": "gw-fr"}
#: sender radio -> (the alias it sends to, the radio that receives, on which network)
ROUTES: dict[str, tuple[str, str, str, str]] = {
    # French radios to a unit of each German gateway
    "1001": ("FR", SPLIT_ALIASES_FR["rtw-1"], SPLIT_UNITS["DE"]["rtw-1"], "DE"),
    "1002": ("FR", SPLIT_ALIASES_FR["rtw-2"], SPLIT_UNITS["DE-2"]["rtw-2"], "DE-2"),
    # a radio of each German gateway to France
    "2001": ("DE", SPLIT_ALIASES_DE["vsav-1"], SPLIT_UNITS["FR"]["vsav-1"], "FR"),
    "2002": ("DE-2", SPLIT_ALIASES_DE["fpt-1"], SPLIT_UNITS["FR"]["fpt-1"], "FR"),
}


async def _start(
    configs: list[Path], tmp_path: Path, name: str, log: Any, *extra: str
) -> asyncio.subprocess.Process:
    from tests.processes import start_gateways

    return await start_gateways(
        configs, tmp_path / f"state-{name}", extra=extra, stderr=log, log_level="info"
    )


@pytest.mark.slow
@pytest.mark.interop
async def test_two_instances_share_a_split_country_and_either_takes_the_other_s_share(
    tmp_path: Path, postgres_url: str
) -> None:
    url = fresh_database(postgres_url)
    logs = {name: tmp_path / f"{name}.log" for name in ("fr", "kehl-a", "kehl-b", "kehl-a2")}
    sims: dict[str, TetraNetworkSimulator] = {}
    async with contextlib.AsyncExitStack() as stack:
        for member in ("DE", "DE-2", "FR"):
            sims[member] = await stack.enter_async_context(
                TetraNetworkSimulator(
                    radio_issi=SPLIT_RADIO[member],
                    units=list(SPLIT_UNITS[member].values()),
                    # German radios take 30 ms per delivery: a backlog builds in custody.
                    delivery_latency=0.0 if member == "FR" else 0.03,
                )
            )
        mqtt = stack.enter_context(mqtt_backbone(tmp_path, NAMES))
        files: dict[str, Path] = {}
        for member, home in (("DE", "kehl-a"), ("DE-2", "kehl-b"), ("FR", None)):
            extra = (
                []
                if home is None
                else [
                    f'[journal]\nurl = "{url}"\n',
                    f'[cluster]\nlease_ttl = {TTL}\nhome = "{home}"\n',
                ]
            )
            files[member] = tmp_path / f"{member.lower()}.toml"
            files[member].write_text(
                over_mqtt(split_config_text(member, sims[member].port), mqtt[member], *extra)
            )
        german = [files["DE"], files["DE-2"]]
        out = {name: stack.enter_context(path.open("wb")) for name, path in logs.items()}
        procs: dict[str, asyncio.subprocess.Process] = {}

        async def stop_all() -> None:
            for proc in procs.values():
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                await asyncio.wait_for(proc.wait(), 30)

        stack.push_async_callback(stop_all)
        sent: dict[tuple[str, str, int], str] = {}  # (network, sender, reference) -> text
        async with asyncio.timeout(180):
            procs["fr"] = await _start([files["FR"]], tmp_path, "fr", out["fr"])
            procs["kehl-a"] = await _start(
                german, tmp_path, "kehl-a", out["kehl-a"], "--instance", "kehl-a"
            )
            # kehl-b is not up yet: kehl-a runs both German gateways meanwhile.
            await radios_initialised(list(sims.values()), 1)
            procs["kehl-b"] = await _start(
                german, tmp_path, "kehl-b", out["kehl-b"], "--instance", "kehl-b"
            )
            began = time.monotonic()
            await radios_initialised([sims["DE-2"]], 2)  # DE-2 went home to kehl-b
            handed_back = time.monotonic() - began
            killed_at, taken_over, came_home = 0.0, None, None
            tick = after = home_at = 0
            takeover = 0.0
            while after < AFTER_TAKEOVER:
                if came_home is not None and came_home.done():
                    after += 1  # traffic after DE came home again
                if tick == KILL_AT:
                    procs["kehl-a"].send_signal(signal.SIGKILL)
                    assert await procs["kehl-a"].wait() == -signal.SIGKILL
                    killed_at = time.monotonic()
                    taken_over = asyncio.ensure_future(radios_initialised([sims["DE"]], 2))
                if came_home is None and taken_over is not None and taken_over.done():
                    # kehl-b runs both; kehl-a comes back and DE is handed back to it
                    # during the traffic (a clean stop on kehl-b, a start on kehl-a).
                    takeover = time.monotonic() - killed_at  # an upper bound
                    procs["kehl-a2"] = await _start(
                        german, tmp_path, "kehl-a2", out["kehl-a2"], "--instance", "kehl-a"
                    )
                    home_at = tick
                    came_home = asyncio.ensure_future(radios_initialised([sims["DE"]], 3))
                for sender, (network, alias, _radio, _to) in ROUTES.items():
                    text = f"{sender} #{tick:03d}"
                    try:
                        reference = await sims[network].send_text(sender, alias, text)
                    except LinkError:
                        continue  # no gateway on that network: nobody acknowledged it
                    sent[(network, sender, reference)] = text
                tick += 1
                await asyncio.sleep(0.03)
            assert came_home is not None

            def acknowledged() -> set[str]:
                return {
                    sent[(network, sender, reference)]
                    for sender, (network, *_rest) in ROUTES.items()
                    for reference in reports_with(sims[network], sender, STORED)
                    if (network, sender, reference) in sent
                }

            def delivered() -> set[str]:
                return {
                    text
                    for _sender, (_n, _alias, radio, to) in ROUTES.items()
                    for text in arrivals(sims[to], radio)
                }

            await eventually(lambda: acknowledged() <= delivered(), 90)

    want = acknowledged()
    assert takeover < TTL + TTL / 3 + 10, f"the takeover took {takeover:.1f} s"
    print(
        f"texts acknowledged: {len(want)}; DE-2 handed back to its home in {handed_back:.2f} s; "
        f"DE taken over within {takeover:.2f} s of the SIGKILL (lease ttl {TTL:g} s), "
        f"then handed back to kehl-a under traffic"
    )
    for sender, (_network, _alias, radio, to) in ROUTES.items():
        texts = [t for t in arrivals(sims[to], radio) if t.startswith(f"{sender} #")]
        assert sorted(set(texts)) == texts, f"{sender} -> {radio}: duplicated or out of order"
        assert {t for t in want if t.startswith(f"{sender} #")} <= set(texts)
        # Every route carried traffic before the kill, after the takeover and after DE
        # came home again.
        numbers = [int(t.split("#")[1]) for t in texts]
        assert min(numbers) < KILL_AT < home_at < max(numbers), f"{sender}: {numbers}"
    # The work was shared: each instance ran its home gateway, and kehl-b took DE over.
    assert log_events(logs["kehl-a"], "cluster.handing_back", gateway="gw-de-2")
    assert len(log_events(logs["kehl-b"], "cluster.active", gateway="gw-de-2")) == 1
    assert len(log_events(logs["kehl-b"], "cluster.active", gateway="gw-de")) == 1
    assert not log_events(logs["kehl-a"], "cluster.active", gateway="gw-de-2")[1:]
    # kehl-a came back: kehl-b handed DE back to its home, which took it and its custody.
    assert log_events(logs["kehl-b"], "cluster.handing_back", gateway="gw-de")
    assert len(log_events(logs["kehl-a2"], "cluster.active", gateway="gw-de")) == 1
    assert not log_events(logs["kehl-a2"], "cluster.active", gateway="gw-de-2")
    # DE's custody at the kill was resumed by kehl-b.
    recovered = log_events(logs["kehl-b"], "journal.recovered", gateway="gw-de")
    assert recovered and recovered[-1]["resumed"], recovered
    assert procs["kehl-b"].returncode == 0, logs["kehl-b"].read_text()[-3000:]
