from __future__ import annotations

from datetime import timedelta

from certs import Federation, expiry_warnings

from .conftest import NOW, load_cert


def test_no_warnings_when_fresh(federation: Federation) -> None:
    items = [load_cert(c.cert) for c in federation.gateways.values()]
    assert expiry_warnings([*items, *federation.bundle().artifacts()], NOW) == []


def test_default_thresholds(federation: Federation) -> None:
    gateway = load_cert(federation.gateways["DE"].cert)  # 30 days: warns 7 days ahead
    console = load_cert(federation.consoles["DE"].cert)  # 7 days: warns 1.75 days ahead
    at = NOW + timedelta(days=22)
    assert expiry_warnings([gateway], at) == []
    [warning] = expiry_warnings([gateway], NOW + timedelta(days=23, hours=1))
    assert warning.kind == "certificate" and not warning.expired
    assert str(warning) == (
        "certificate euccs://DE/gateway/gw-de expires on 2030-03-31T12:00:00Z (in 7 days)"
    )
    assert expiry_warnings([console], NOW + timedelta(days=5)) == []
    [soon] = expiry_warnings([console], NOW + timedelta(days=5, hours=6))
    assert "in 42 hours" in soon.message


def test_expired_items_and_crls(federation: Federation) -> None:
    bundle = federation.bundle()
    later = NOW + timedelta(days=8)
    warnings = expiry_warnings(bundle.artifacts(), later)
    assert [w.label for w in warnings] == ["CRL of DE", "CRL of FR"]
    assert all(w.expired and w.kind == "crl" for w in warnings)
    assert (
        warnings[0].message
        == "CRL of DE next update was due on 2030-03-08T12:00:00Z (24 hours ago)"
    )


def test_fixed_threshold_and_ca_cap(federation: Federation) -> None:
    ca = federation.ca("FR").certificate  # 5 years: warns 90 days ahead
    end = ca.not_valid_after_utc
    assert expiry_warnings([ca], end - timedelta(days=91)) == []
    [warning] = expiry_warnings([("FR CA", ca)], end - timedelta(days=89))
    assert warning.label == "FR CA" and "in 89 days" in warning.message
    gateway = load_cert(federation.gateways["FR"].cert)
    assert len(expiry_warnings([gateway], NOW, warn_days=31)) == 1
    assert expiry_warnings([gateway], NOW, warn_days=29) == []
