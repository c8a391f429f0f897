from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

import certs
from certs.testing import BadKind, mint_bad_credentials

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def federation(tmp_path: Path) -> certs.Federation:
    return certs.mint_federation(tmp_path / "pki", ["DE", "FR"], now=NOW)


@pytest.fixture
def bad(federation: certs.Federation) -> dict[BadKind, certs.Credential]:
    return mint_bad_credentials(federation, now=NOW, country="DE")
