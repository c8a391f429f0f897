from __future__ import annotations

import argparse
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certs import CertificateAuthority, load_bundle
from certs.cli import main, register

from .conftest import load_cert


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    de, fr = tmp_path / "pki" / "DE", tmp_path / "pki" / "FR"
    code, out, _ = run(capsys, "ca", "create", "--country", "DE", "--name", "bka", "--dir", str(de))
    assert code == 0
    assert "created CA euccs://DE/ca/bka" in out and f"wrote {de / 'ca.key'}" in out
    assert stat.S_IMODE(os.stat(de / "ca.key").st_mode) == 0o600
    assert "BEGIN" not in out  # never prints key material
    code, _, _ = run(
        capsys, "certs", "ca", "create", "--country", "FR", "--name", "anfsi", "--dir", str(fr)
    )
    assert code == 0

    gw = de / "gateway-kehl"
    code, out, _ = run(
        capsys, "issue", "--ca", str(de), "--role", "gateway", "--name", "kehl",
        "--dns", "gw.kehl.example", "--out", str(gw),
    )  # fmt: skip
    assert code == 0
    assert "issued euccs://DE/gateway/kehl by euccs://DE/ca/bka" in out
    assert f"wrote {gw}.pem" in out and f"wrote {gw}.key" in out
    assert stat.S_IMODE(os.stat(f"{gw}.key").st_mode) == 0o600
    code, out, _ = run(capsys, "issue", "--ca", str(de), "--role", "console", "--name", "lz-1")
    assert code == 0 and f"wrote {de / 'console-lz-1.pem'}" in out
    code, _, _ = run(capsys, "issue", "--ca", str(fr), "--role", "gateway", "--name", "strasbourg")
    assert code == 0
    for ca in (de, fr):
        code, out, _ = run(capsys, "crl", "--ca", str(ca), "--days", "3")
        assert code == 0 and f"wrote {ca / 'crl.pem'}" in out

    bundle = tmp_path / "federation-bundle"
    code, out, err = run(capsys, "bundle", "--out", str(bundle), "--ca", str(de), "--ca", str(fr))
    assert code == 0, err
    assert (
        "trust bundle" in out
        and "2 countries" in out
        and f"wrote {bundle / 'manifest.json'}" in out
    )
    assert load_bundle(bundle).countries == ["DE", "FR"]
    code, out, _ = run(capsys, "inspect", str(bundle))  # the directory `bundle` wrote
    assert code == 0 and "bundle:" in out and "(2 countries)" in out
    assert "-- DE: CA" in out and "identity: euccs://FR/ca/anfsi" in out
    assert out.count("CRL number:") == 2

    code, out, _ = run(capsys, "verify", f"{gw}.pem", "--bundle", str(bundle), "--role", "gateway")
    assert code == 0
    assert out.startswith("OK: euccs://DE/gateway/kehl (country DE, role gateway, name kehl)")

    code, out, _ = run(capsys, "inspect", f"{gw}.pem")
    assert code == 0
    assert "identity: euccs://DE/gateway/kehl" in out
    assert "SANs:     URI:euccs://DE/gateway/kehl, DNS:gw.kehl.example" in out
    assert "days remaining" in out and "ECDSA P-256" in out

    serial = load_cert(Path(f"{gw}.pem")).serial_number
    code, out, _ = run(
        capsys, "revoke", "--ca", str(de), "--cert", f"{gw}.pem", "--reason", "key_compromise"
    )
    assert code == 0
    assert f"revoked euccs://DE/gateway/kehl (serial 0x{serial:X})" in out
    crl = x509.load_pem_x509_crl((de / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None

    code, out, _ = run(
        capsys, "bundle", "--out", str(bundle), "--update", "--crl", f"DE={de / 'crl.pem'}"
    )
    assert code == 0
    code, out, err = run(capsys, "verify", f"{gw}.pem", "--bundle", str(bundle))
    assert code == 1 and out == ""
    assert err.startswith("REFUSED (revoked): euccs://DE/gateway/kehl")
    assert "reason key_compromise" in err

    code, out, _ = run(capsys, "inspect", str(de / "crl.pem"))
    assert code == 0 and "revoked:      1 certificate(s)" in out and f"0x{serial:X}" in out

    index = json.loads((de / "index.json").read_text())
    assert [r["identity"] for r in index["revoked"]] == ["euccs://DE/gateway/kehl"]


def test_revoke_by_serial_and_verify_at(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    de = tmp_path / "DE"
    assert run(capsys, "ca", "create", "--country", "DE", "--name", "bka", "--dir", str(de))[0] == 0
    assert run(capsys, "issue", "--ca", str(de), "--role", "adapter", "--name", "tetra-1")[0] == 0
    cert = de / "adapter-tetra-1.pem"
    assert run(capsys, "bundle", "--out", str(tmp_path / "b.json"), "--ca", str(de))[0] == 0
    code, _, err = run(
        capsys,
        "verify",
        str(cert),
        "--bundle",
        str(tmp_path / "b.json"),
        "--at",
        "2000-01-01T00:00:00Z",
    )
    assert code == 1 and "REFUSED (not-yet-valid)" in err
    code, _, err = run(
        capsys, "verify", str(cert), "--bundle", str(tmp_path / "b.json"), "--role", "gateway"
    )
    assert code == 1 and "REFUSED (wrong-role)" in err
    serial = load_cert(cert).serial_number
    code, out, _ = run(capsys, "revoke", "--ca", str(de), "--serial", f"0x{serial:x}")
    assert code == 0 and "revoked euccs://DE/adapter/tetra-1" in out
    code, _, err = run(capsys, "revoke", "--ca", str(de), "--serial", str(serial))
    assert code == 2 and "already revoked" in err


def test_usage_and_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "issue", "--ca", str(tmp_path), "--role", "gateway", "--name", "x")
    assert code == 2 and err.startswith("error: ") and "not a CA directory" in err
    code, _, err = run(capsys, "issue", "--ca", str(tmp_path), "--role", "pilot", "--name", "x")
    assert code == 2 and "invalid choice: 'pilot'" in err
    code, _, err = run(capsys, "bundle", "--out", str(tmp_path / "b"), "--ca-cert", "xx=x.pem")
    assert code == 2 and "not a country code" in err
    key = tmp_path / "DE" / "ca.key"
    assert (
        run(capsys, "ca", "create", "--country", "DE", "--name", "bka", "--dir", str(key.parent))[0]
        == 0
    )
    code, out, err = run(capsys, "inspect", str(key))
    assert code == 2 and "holds a private key" in err and "BEGIN" not in out + err
    code, _, err = run(
        capsys, "crl", "--ca", str(key.parent), "--passphrase-env", "EUCCS_TEST_UNSET_VARIABLE"
    )
    assert code == 2 and "EUCCS_TEST_UNSET_VARIABLE" in err


def test_passphrase_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CA_PASS", "correct horse")
    ca = tmp_path / "FR"
    code, _, _ = run(
        capsys, "ca", "create", "--country", "FR", "--name", "anfsi", "--dir", str(ca),
        "--passphrase-env", "CA_PASS",
    )  # fmt: skip
    assert code == 0 and b"ENCRYPTED" in (ca / "ca.key").read_bytes()
    code, _, err = run(capsys, "crl", "--ca", str(ca))
    assert code == 2 and "is encrypted" in err
    code, out, _ = run(capsys, "crl", "--ca", str(ca), "--passphrase-env", "CA_PASS")
    assert code == 0 and "published CRL of euccs://FR/ca/anfsi: 0 revoked" in out


def test_expiry_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    de = tmp_path / "DE"
    assert run(capsys, "ca", "create", "--country", "DE", "--name", "bka", "--dir", str(de))[0] == 0
    assert (
        run(capsys, "issue", "--ca", str(de), "--role", "console", "--name", "lz", "--days", "1")[0]
        == 0
    )
    assert run(capsys, "expiry", str(de / "console-lz.pem"))[0] == 0  # 1/4 of 1 day: not yet
    code, out, _ = run(capsys, "expiry", str(de / "console-lz.pem"), "--warn-days", "2")
    assert code == 1 and out.startswith(f"warning: certificate {de / 'console-lz.pem'} expires on")
    code, out, _ = run(capsys, "expiry", str(de / "ca.pem"))
    assert code == 0 and out.startswith("ok: 1 item(s)")


def test_register_adds_the_certs_tree() -> None:
    parser = argparse.ArgumentParser(prog="euccs-gw")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register(sub)
    args = parser.parse_args(["certs", "crl", "--ca", "pki/DE", "--days", "2"])
    assert args.command == "certs" and args.certs_command == "crl"
    assert args.ca == Path("pki/DE") and args.days == 2
    assert callable(args.func)


def test_bundle_updates_never_take_a_stale_crl_or_drop_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    de = tmp_path / "DE"
    assert run(capsys, "ca", "create", "--country", "DE", "--name", "bka", "--dir", str(de))[0] == 0
    assert run(capsys, "crl", "--ca", str(de), "--days", "3")[0] == 0
    older = tmp_path / "older-crl.pem"
    older.write_bytes((de / "crl.pem").read_bytes())
    assert run(capsys, "issue", "--ca", str(de), "--role", "gateway", "--name", "kehl")[0] == 0
    code, _, _ = run(capsys, "revoke", "--ca", str(de), "--cert", str(de / "gateway-kehl.pem"))
    assert code == 0
    bundle = tmp_path / "bundle"
    assert run(capsys, "bundle", "--out", str(bundle), "--ca", str(de))[0] == 0
    revoked_crl = load_bundle(bundle).entries["DE"].crl
    assert revoked_crl is not None

    # An older CRL would un-revoke the gateway: refused unless asked for explicitly.
    code, _, err = run(capsys, "bundle", "--out", str(bundle), "--update", "--crl", f"DE={older}")
    assert code != 0 and "older than the one in the bundle" in err
    assert load_bundle(bundle).entries["DE"].crl == revoked_crl
    code, _, err = run(
        capsys, "bundle", "--out", str(bundle), "--update", "--crl", f"DE={older}",
        "--allow-older-crl",
    )  # fmt: skip
    assert code == 0, err

    # A CA directory without its CRL does not drop the one held.
    assert run(capsys, "bundle", "--out", str(bundle), "--crl", f"DE={de / 'crl.pem'}",
               "--update", "--allow-older-crl")[0] == 0  # fmt: skip
    (de / "crl.pem").unlink()
    assert run(capsys, "bundle", "--out", str(bundle), "--update", "--ca", str(de))[0] == 0
    assert load_bundle(bundle).entries["DE"].crl == revoked_crl


def test_a_crl_issued_in_the_future_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    de = tmp_path / "DE"
    assert run(capsys, "ca", "create", "--country", "DE", "--name", "bka", "--dir", str(de))[0] == 0
    future = datetime.now(UTC) + timedelta(days=3)  # the clock of the CA's machine is wrong
    CertificateAuthority.load(de).publish_crl(now=future)
    code, _, err = run(capsys, "bundle", "--out", str(tmp_path / "b"), "--ca", str(de))
    assert code != 0 and "check the clock" in err


@pytest.mark.parametrize(("given", "made"), [("de", "DE"), ("EL", "EL"), ("uk", "UK")])
def test_ca_create_takes_a_country_code_in_any_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str, made: str
) -> None:
    code, out, _ = run(
        capsys, "ca", "create", "--country", given, "--name", "x", "--dir", str(tmp_path / "ca")
    )
    assert code == 0 and f"created CA euccs://{made}/ca/x" in out


@pytest.mark.parametrize("given", ["XX", "D", "DEU", "Q1"])
def test_ca_create_refuses_what_is_not_a_country_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    code, _, err = run(
        capsys, "ca", "create", "--country", given, "--name", "x", "--dir", str(tmp_path / "ca")
    )
    assert code == 2 and "is not a country code" in err
    assert not (tmp_path / "ca").exists()
