"""Real TLS 1.3 handshakes over loopback with the context factories."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs import (
    Credential,
    Federation,
    PeerRefused,
    Refusal,
    Role,
    TrustBundle,
    client_context,
    mint_federation,
    peer_identity,
    server_context,
)
from certs.testing import BadKind, mint_bad_credentials


@dataclass
class Outcome:
    accepted: list[str] = field(default_factory=list)
    refused_after_handshake: list[Refusal] = field(default_factory=list)
    reply: bytes | None = None
    client_error: BaseException | None = None


@pytest.fixture
def live(tmp_path: Path) -> tuple[Federation, dict[BadKind, Credential], TrustBundle]:
    now = datetime.now(UTC)  # OpenSSL checks validity against the real clock
    federation = mint_federation(tmp_path / "pki", ["DE", "FR"], now=now)
    bad = mint_bad_credentials(federation, now=now, country="DE")
    return federation, bad, federation.bundle()


async def exchange(
    server: ssl.SSLContext,
    client: ssl.SSLContext,
    bundle: TrustBundle,
) -> Outcome:
    outcome = Outcome()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            identity = peer_identity(
                writer.get_extra_info("ssl_object"), bundle, datetime.now(UTC), purpose="client"
            )
        except PeerRefused as exc:
            outcome.refused_after_handshake.append(exc.reason)
            writer.close()
            return
        outcome.accepted.append(identity.uri)
        await reader.readline()
        writer.write(b"pong\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
            except (ssl.SSLError, ConnectionError) as exc:
                outcome.client_error = exc
                return outcome
            try:
                writer.write(b"ping\n")
                await writer.drain()
                outcome.reply = await reader.readline()
            except (ssl.SSLError, ConnectionError) as exc:
                outcome.client_error = exc
            finally:
                writer.close()
                with contextlib.suppress(ssl.SSLError, ConnectionError):
                    await writer.wait_closed()
            await asyncio.sleep(0.05)  # let the server side finish its handler
    finally:
        listener.close()
        await listener.wait_closed()
    return outcome


def contexts(
    federation: Federation,
    client: Credential,
    tweak: Callable[[ssl.SSLContext], None] | None = None,
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    fr = federation.gateways["FR"]
    server = server_context(fr.cert, fr.key, federation.bundle_dir)
    client_ctx = client_context(client.cert, client.key, federation.bundle_dir)
    if tweak is not None:
        tweak(client_ctx)
    return server, client_ctx


def test_contexts_are_tls13_mutual_with_crl_checks(
    live: tuple[Federation, dict[BadKind, Credential], TrustBundle],
) -> None:
    federation, _, _ = live
    server, client = contexts(federation, federation.gateways["DE"])
    for context in (server, client):
        assert context.minimum_version is ssl.TLSVersion.TLSv1_3
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
        assert len(context.get_ca_certs()) == 2
    assert not client.check_hostname


async def test_valid_gateway_and_console_are_accepted(
    live: tuple[Federation, dict[BadKind, Credential], TrustBundle],
) -> None:
    federation, _, bundle = live
    for credential in (federation.gateways["DE"], federation.consoles["DE"]):
        outcome = await exchange(*contexts(federation, credential), bundle)
        assert outcome.client_error is None
        assert outcome.reply == b"pong\n"
        assert outcome.accepted == [credential.identity.uri]


@pytest.mark.parametrize(
    "kind",
    [BadKind.REVOKED, BadKind.EXPIRED, BadKind.UNKNOWN_CA, BadKind.FOREIGN_IDENTITY],
    ids=lambda k: k.value,
)
async def test_bad_client_is_refused_by_the_handshake(
    live: tuple[Federation, dict[BadKind, Credential], TrustBundle], kind: BadKind
) -> None:
    """Revoked (CRL check), expired, unknown CA, and DE-minted FR identity (name constraints)."""
    federation, bad, bundle = live
    outcome = await exchange(*contexts(federation, bad[kind]), bundle)
    assert outcome.accepted == [] and outcome.refused_after_handshake == []
    assert outcome.reply != b"pong\n"


async def test_verify_peer_after_the_handshake_catches_what_tls_cannot(
    live: tuple[Federation, dict[BadKind, Credential], TrustBundle],
) -> None:
    federation, bad, bundle = live
    outcome = await exchange(*contexts(federation, bad[BadKind.MISSING_IDENTITY]), bundle)
    assert outcome.accepted == []
    assert outcome.refused_after_handshake == [Refusal.MISSING_IDENTITY]
    assert outcome.reply != b"pong\n"


async def test_tls12_client_is_refused(
    live: tuple[Federation, dict[BadKind, Credential], TrustBundle],
) -> None:
    federation, _, bundle = live

    def tls12(context: ssl.SSLContext) -> None:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = ssl.TLSVersion.TLSv1_2

    outcome = await exchange(*contexts(federation, federation.gateways["DE"], tls12), bundle)
    assert isinstance(outcome.client_error, ssl.SSLError | ConnectionError)
    assert outcome.accepted == [] and outcome.reply is None


async def test_client_refuses_a_server_from_an_unknown_ca(
    live: tuple[Federation, dict[BadKind, Credential], TrustBundle],
) -> None:
    federation, bad, bundle = live
    rogue = bad[BadKind.UNKNOWN_CA]
    server = server_context(rogue.cert, rogue.key, bundle)
    de = federation.gateways["DE"]
    outcome = await exchange(server, client_context(de.cert, de.key, bundle), bundle)
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert "certificate verify failed" in str(outcome.client_error)
    assert outcome.accepted == []


def test_server_identity_check_with_peer_identity_roles(
    live: tuple[Federation, dict[BadKind, Credential], TrustBundle],
) -> None:
    """peer_identity refuses a peer that presented nothing."""
    _, _, bundle = live

    class NoCert:
        def getpeercert(self, binary_form: bool = False) -> None:
            return None

    with pytest.raises(PeerRefused, match="presented no certificate"):
        peer_identity(NoCert(), bundle, datetime.now(UTC), roles=[Role.GATEWAY])  # type: ignore[arg-type]


async def test_revoked_passes_tls_without_crl_check_but_not_verify_peer(
    live: tuple[Federation, dict[BadKind, Credential], TrustBundle],
) -> None:
    """Control: the handshake refusal above is the CRL check's doing."""
    federation, bad, bundle = live
    fr, revoked = federation.gateways["FR"], bad[BadKind.REVOKED]
    server = server_context(fr.cert, fr.key, bundle, crl_check=False)
    assert not server.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    outcome = await exchange(server, client_context(revoked.cert, revoked.key, bundle), bundle)
    assert outcome.refused_after_handshake == [Refusal.REVOKED]
    assert outcome.accepted == []
