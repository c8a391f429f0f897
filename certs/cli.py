"""``euccs-gw certs ...``: the PKI command line.

Actions::

    euccs-gw certs ca create --country DE --name bka --dir pki/DE [--days N]
    euccs-gw certs issue --ca pki/DE --role gateway --name kehl [--days N] [--dns HOST]
                         [--crl-url URL] [--out pki/DE/gateway-kehl] [--force]
    euccs-gw certs revoke --ca pki/DE (--serial N | --cert FILE) [--reason R] [--crl-days 7]
    euccs-gw certs crl --ca pki/DE [--days 7]
    euccs-gw certs bundle --out federation-bundle [--ca pki/DE ...] [--ca-cert FR=fr-ca.pem ...]
                          [--crl FR=fr-crl.pem ...] [--update] [--replace-ca]
    euccs-gw certs inspect FILE... [--at TIME]
    euccs-gw certs verify FILE --bundle federation-bundle [--role gateway ...] [--at TIME]
    euccs-gw certs expiry [FILE...] [--bundle B] [--warn-days N] [--at TIME]

CA commands take ``--passphrase-env VAR`` for an encrypted CA key; ``issue`` takes
``--key-passphrase-env VAR`` to encrypt the new key (keys are unencrypted PEM, mode 0600,
by default). Exit codes: 0 success, 1 verification refused (or expiry warnings for
``expiry``), 2 bad usage, configuration or files.

Integrate with ``gateway.cli`` via :func:`register`; run standalone with :func:`main`
(``python -m certs.cli ca create ...``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from certs._files import iso, load_certificates, load_crl
from certs.bundle import BundleEntry, TrustBundle, load_bundle, write_bundle
from certs.ca import (
    CA_CERT_FILE,
    CLOCK_SKEW,
    CRL_FILE,
    DEFAULT_CA_DAYS,
    DEFAULT_CRL_DAYS,
    DEFAULT_LEAF_DAYS,
    CertificateAuthority,
)
from certs.countries import country_code
from certs.describe import describe_certificate, describe_crl
from certs.errors import CertificateError, PeerRefused
from certs.expiry import expiry_warnings
from certs.identity import LEAF_ROLES, identity_of, parse_serial, serial_text
from certs.verify import verify_peer

__all__ = ["main", "register"]

Handler = Callable[[argparse.Namespace], int]
_REASONS = {r.name: r for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl}


def _now(args: argparse.Namespace) -> datetime:
    at: datetime | None = getattr(args, "at", None)
    return at if at is not None else datetime.now(UTC)


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2025-06-01T12:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _country(text: str) -> str:
    try:
        return country_code(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _country_path(text: str) -> tuple[str, Path]:
    country, sep, path = text.partition("=")
    country = _country(country)
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not COUNTRY=PATH (e.g. FR=fr-ca.pem)")
    return country, Path(path)


def _passphrase(variable: str | None) -> bytes | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise CertificateError(f"environment variable {variable} (the passphrase) is not set")
    return value.encode()


def _load_ca(args: argparse.Namespace) -> CertificateAuthority:
    return CertificateAuthority.load(args.ca, passphrase=_passphrase(args.passphrase_env))


# -- actions ----------------------------------------------------------------------------------


def _ca_create(args: argparse.Namespace) -> int:
    now = _now(args)
    ca = CertificateAuthority.create(
        args.dir,
        country=args.country,
        name=args.name,
        now=now,
        days=args.days,
        passphrase=_passphrase(args.passphrase_env),
    )
    cert = ca.certificate
    print(f"created CA {ca.identity.uri} ({cert.subject.rfc4514_string()})")
    print(
        f"  valid until {iso(cert.not_valid_after_utc)}, serial {serial_text(cert.serial_number)}"
    )
    print(f"  wrote {ca.directory / CA_CERT_FILE} (certificate: give it to partner countries)")
    state = "encrypted" if args.passphrase_env else "unencrypted"
    print(f"  wrote {ca.directory / 'ca.key'} (private key, {state}, mode 0600: keep it secret)")
    print(f"  wrote {ca.index_path} (CA state)")
    return 0


def _issue(args: argparse.Namespace) -> int:
    now = _now(args)
    ca = _load_ca(args)
    out = args.out if args.out is not None else ca.directory / f"{args.role}-{args.name}"
    issued = ca.issue(
        args.role,
        args.name,
        now=now,
        out=out,
        days=args.days,
        dns=args.dns or (),
        crl_url=args.crl_url,
        key_passphrase=_passphrase(args.key_passphrase_env),
        overwrite=args.force,
    )
    print(f"issued {issued.identity.uri} by {ca.identity.uri}")
    print(f"  serial {serial_text(issued.serial)}, valid until {iso(issued.not_after)}")
    print(f"  wrote {issued.cert_path} (certificate)")
    state = "encrypted" if args.key_passphrase_env else "unencrypted"
    print(f"  wrote {issued.key_path} (private key, {state}, mode 0600)")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    now = _now(args)
    ca = _load_ca(args)
    reason = _REASONS[args.reason] if args.reason else None
    if args.cert is not None:
        record = ca.revoke_certificate(load_certificates(args.cert)[0], now=now, reason=reason)
    else:
        try:
            serial = parse_serial(args.serial)
        except ValueError as exc:
            raise CertificateError(str(exc)) from None
        record = ca.revoke(serial, now=now, reason=reason)
    print(f"revoked {record.identity} (serial {serial_text(record.serial)}) at {iso(now)}")
    path = ca.publish_crl(now=now, days=args.crl_days)
    count = len(ca.revocations())
    print(f"  wrote {path} (CRL, {count} revoked, next update in {args.crl_days} days)")
    print("  distribute the CRL: partners update their bundle (euccs-gw certs bundle --update)")
    return 0


def _crl(args: argparse.Namespace) -> int:
    now = _now(args)
    ca = _load_ca(args)
    path = ca.publish_crl(now=now, days=args.days)
    crl = load_crl(path)
    next_update = crl.next_update_utc
    print(f"published CRL of {ca.identity.uri}: {len(crl)} revoked")
    print(f"  next update {iso(next_update) if next_update else '(none)'}")
    print(f"  wrote {path}")
    return 0


def _bundle(args: argparse.Namespace) -> int:
    now = _now(args)
    out = Path(args.out)
    bundle = load_bundle(out) if args.update and out.exists() else TrustBundle()
    if not (args.ca or args.ca_cert or args.crl or args.update):
        raise CertificateError("nothing to bundle: give --ca DIR or --ca-cert CC=FILE")
    for directory in args.ca or []:
        ca_cert = load_certificates(Path(directory) / CA_CERT_FILE)[0]
        crl_path = Path(directory) / CRL_FILE
        crl = _fresh(load_crl(crl_path), now, crl_path) if crl_path.exists() else None
        bundle = _add(bundle, ca_cert, args.replace_ca, source=str(directory))
        if crl is not None:
            country = identity_of(ca_cert).country
            bundle = bundle.with_crl(country, crl, allow_older=args.allow_older_crl)
    for country, path in args.ca_cert or []:
        ca_cert = load_certificates(path)[0]
        old = bundle.get(country)
        entry_crl = old.crl if old is not None and old.ca == ca_cert else None
        bundle = bundle.with_entry(
            BundleEntry(country, ca_cert, entry_crl), replace_ca=args.replace_ca
        )
    for country, path in args.crl or []:
        crl = _fresh(load_crl(path), now, path)
        bundle = bundle.with_crl(country, crl, allow_older=args.allow_older_crl)
    written = write_bundle(bundle, out)
    print(f"trust bundle {out}: {len(bundle)} countr{'y' if len(bundle) == 1 else 'ies'}")
    for entry in bundle:
        crl_text = "no CRL"
        if entry.crl is not None:
            next_update = entry.crl.next_update_utc
            crl_text = f"CRL until {iso(next_update) if next_update else '(open)'}"
        print(
            f"  {entry.country}: {entry.ca.subject.rfc4514_string()}, "
            f"until {iso(entry.ca.not_valid_after_utc)}, {crl_text}"
        )
    for path in written:
        print(f"  wrote {path}")
    missing = [e.country for e in bundle if e.crl is None]
    if missing and len(missing) < len(bundle):
        print(
            f"warning: no CRL for {', '.join(missing)}: with CRL checking on (the bundle has "
            "CRLs), TLS refuses peers of these countries; add --crl CC=FILE",
            file=sys.stderr,
        )
    if len(missing) == len(bundle):
        print(
            "warning: the bundle carries no CRL: revocation is not checked (publish CRLs with "
            "euccs-gw certs crl and add them with --crl CC=FILE)",
            file=sys.stderr,
        )
    for warning in expiry_warnings(bundle.artifacts(), now):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _fresh(
    crl: x509.CertificateRevocationList, now: datetime, path: Path
) -> x509.CertificateRevocationList:
    """Refuse a CRL issued in the future (a wrong clock where it was made)."""
    if crl.last_update_utc > now + CLOCK_SKEW:
        raise CertificateError(
            f"{path}: the CRL says it was issued on {iso(crl.last_update_utc)}, after now "
            f"({iso(now)}): check the clock of the CA that made it"
        )
    return crl


def _add(
    bundle: TrustBundle, ca_cert: x509.Certificate, replace_ca: bool, *, source: str
) -> TrustBundle:
    """Add a CA; a CA held already keeps its CRL (never replaced by none)."""
    try:
        country = identity_of(ca_cert).country
    except PeerRefused as exc:
        raise CertificateError(f"{source}: {exc}") from None
    old = bundle.get(country)
    kept = old.crl if old is not None and old.ca == ca_cert else None
    return bundle.with_entry(BundleEntry(country, ca_cert, kept), replace_ca=replace_ca)


def _read_any(path: Path) -> list[x509.Certificate] | x509.CertificateRevocationList:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {path}: {exc.strerror}") from None
    if b"PRIVATE KEY-----" in data:
        raise CertificateError(f"{path} holds a private key; inspect does not read private keys")
    if b"X509 CRL-----" in data:
        return load_crl(path)
    try:
        return load_certificates(path)
    except CertificateError:
        try:
            return load_crl(path)
        except CertificateError:
            raise CertificateError(f"{path} holds no certificate and no CRL") from None


def _inspect_bundle(path: Path, now: datetime) -> None:
    """Describe each country's CA and CRL in a trust bundle (directory or JSON file)."""
    bundle = load_bundle(path)
    print(f"bundle:   {path} ({len(bundle.entries)} countries)")
    for country, entry in sorted(bundle.entries.items()):
        print(f"\n-- {country}: CA")
        print(describe_certificate(entry.ca, now))
        print(f"-- {country}: CRL")
        print(describe_crl(entry.crl, now) if entry.crl is not None else "none")


def _inspect(args: argparse.Namespace) -> int:
    now = _now(args)
    for number, name in enumerate(args.files):
        if number:
            print()
        path = Path(name)
        if path.is_dir() or path.suffix == ".json":
            _inspect_bundle(path, now)
            continue
        content = _read_any(path)
        print(f"file:     {name}")
        if isinstance(content, x509.CertificateRevocationList):
            print(describe_crl(content, now))
            continue
        for position, cert in enumerate(content):
            if position:
                print(f"-- certificate {position + 1} of {len(content)}")
            print(describe_certificate(cert, now))
    return 0


def _verify(args: argparse.Namespace) -> int:
    now = _now(args)
    bundle = load_bundle(args.bundle)
    cert = load_certificates(Path(args.file))[0]
    try:
        identity = verify_peer(cert, bundle, now, roles=args.role)
    except PeerRefused as exc:
        print(f"REFUSED ({exc.reason.value}): {exc}", file=sys.stderr)
        return 1
    print(
        f"OK: {identity.uri} (country {identity.country}, role {identity.role.value}, "
        f"name {identity.name}), serial {serial_text(cert.serial_number)}, "
        f"valid until {iso(cert.not_valid_after_utc)}"
    )
    for warning in expiry_warnings([cert, *(i for _, i in bundle.artifacts())], now):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _expiry(args: argparse.Namespace) -> int:
    now = _now(args)
    items: list[tuple[str, x509.Certificate | x509.CertificateRevocationList]] = []
    for name in args.files:
        content = _read_any(Path(name))
        if isinstance(content, x509.CertificateRevocationList):
            items.append((f"CRL {name}", content))
        else:
            items.extend((f"certificate {name}", cert) for cert in content[:1])
    if args.bundle is not None:
        items.extend(load_bundle(args.bundle).artifacts())
    if not items:
        raise CertificateError("nothing to check: give FILEs and/or --bundle")
    warnings = expiry_warnings(items, now, warn_days=args.warn_days)
    for warning in warnings:
        print(f"warning: {warning}")
    if not warnings:
        print(f"ok: {len(items)} item(s), none expiring within the thresholds")
    return 1 if warnings else 0


# -- parser -----------------------------------------------------------------------------------


def _guarded(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except CertificateError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


def _ca_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ca", required=True, type=Path, metavar="DIR", help="the CA directory")
    parser.add_argument(
        "--passphrase-env", metavar="VAR", help="environment variable holding the CA key passphrase"
    )


def _at(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--at", type=_time, metavar="TIME", help="evaluate at this ISO 8601 time (default now)"
    )


def _add_actions(certs: argparse.ArgumentParser) -> None:
    sub = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")

    ca = sub.add_parser("ca", help="national certificate authorities")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True, metavar="ACTION")
    create = ca_sub.add_parser("create", help="create a national CA (ECDSA P-256, self-signed)")
    create.add_argument(
        "--country", required=True, type=_country, help="ISO 3166-1 alpha-2 code, e.g. DE"
    )
    create.add_argument("--name", required=True, help="the CA's name, e.g. bka")
    create.add_argument("--dir", required=True, type=Path, help="the CA directory to create")
    create.add_argument(
        "--days", type=int, default=DEFAULT_CA_DAYS, help=f"lifetime (default {DEFAULT_CA_DAYS})"
    )
    create.add_argument(
        "--passphrase-env", metavar="VAR", help="encrypt the CA key with the passphrase in VAR"
    )
    create.set_defaults(func=_guarded(_ca_create))
    _add_issue_revoke_crl(sub)
    _add_bundle_tools(sub)


def _add_issue_revoke_crl(sub: Any) -> None:
    issue: argparse.ArgumentParser = sub.add_parser(
        "issue", help="issue a gateway, adapter or console certificate"
    )
    _ca_options(issue)
    issue.add_argument("--role", required=True, choices=sorted(r.value for r in LEAF_ROLES))
    issue.add_argument("--name", required=True, help="the holder's name, e.g. kehl")
    days = ", ".join(f"{r.value} {d}" for r, d in DEFAULT_LEAF_DAYS.items())
    issue.add_argument("--days", type=int, help=f"lifetime in days (default: {days})")
    issue.add_argument("--dns", action="append", metavar="HOST", help="add a DNS SAN (repeatable)")
    issue.add_argument("--crl-url", metavar="URL", help="add a CRL distribution point")
    issue.add_argument(
        "--out",
        type=Path,
        metavar="PREFIX",
        help="writes PREFIX.pem and PREFIX.key (default <ca>/<role>-<name>)",
    )
    issue.add_argument("--force", action="store_true", help="replace existing files")
    issue.add_argument(
        "--key-passphrase-env", metavar="VAR", help="encrypt the new key with the passphrase in VAR"
    )
    issue.set_defaults(func=_guarded(_issue))

    revoke = sub.add_parser("revoke", help="revoke a certificate and publish a new CRL")
    _ca_options(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", metavar="N", help="serial: 0xHEX, aa:bb:.. or decimal")
    which.add_argument("--cert", type=Path, metavar="FILE", help="the certificate to revoke")
    revoke.add_argument("--reason", choices=sorted(_REASONS), help="CRL reason code")
    revoke.add_argument(
        "--crl-days",
        type=int,
        default=DEFAULT_CRL_DAYS,
        help=f"validity of the new CRL (default {DEFAULT_CRL_DAYS})",
    )
    revoke.set_defaults(func=_guarded(_revoke))

    crl = sub.add_parser("crl", help="publish a CRL (crl.pem in the CA directory)")
    _ca_options(crl)
    crl.add_argument(
        "--days",
        type=int,
        default=DEFAULT_CRL_DAYS,
        help=f"days until nextUpdate (default {DEFAULT_CRL_DAYS})",
    )
    crl.set_defaults(func=_guarded(_crl))


def _add_bundle_tools(sub: Any) -> None:
    bundle: argparse.ArgumentParser = sub.add_parser(
        "bundle", help="build the federation trust bundle"
    )
    bundle.add_argument(
        "--out", required=True, help="bundle directory, or a single file if it ends in .json"
    )
    bundle.add_argument(
        "--ca", action="append", type=Path, metavar="DIR", help="a CA directory (ca.pem, crl.pem)"
    )
    bundle.add_argument(
        "--ca-cert",
        action="append",
        type=_country_path,
        metavar="CC=FILE",
        help="a partner country's CA certificate",
    )
    bundle.add_argument(
        "--crl", action="append", type=_country_path, metavar="CC=FILE", help="a country's CRL"
    )
    bundle.add_argument(
        "--update", action="store_true", help="start from the existing bundle at --out"
    )
    bundle.add_argument(
        "--replace-ca", action="store_true", help="allow replacing a country's CA (rollover)"
    )
    bundle.add_argument(
        "--allow-older-crl",
        action="store_true",
        help="accept a CRL older than the one in the bundle (it may un-revoke certificates)",
    )
    bundle.set_defaults(func=_guarded(_bundle))

    inspect = sub.add_parser(
        "inspect", help="describe certificates, CRLs and trust bundles (a directory or .json)"
    )
    inspect.add_argument("files", nargs="+", metavar="FILE")
    _at(inspect)
    inspect.set_defaults(func=_guarded(_inspect))

    verify = sub.add_parser("verify", help="verify a certificate against the trust bundle")
    verify.add_argument("file", metavar="FILE")
    verify.add_argument("--bundle", required=True, metavar="PATH", help="the trust bundle")
    verify.add_argument(
        "--role",
        action="append",
        choices=sorted(r.value for r in LEAF_ROLES),
        help="accepted role (repeatable; default any)",
    )
    _at(verify)
    verify.set_defaults(func=_guarded(_verify))

    expiry = sub.add_parser("expiry", help="warn about certificates and CRLs expiring soon")
    expiry.add_argument("files", nargs="*", metavar="FILE")
    expiry.add_argument("--bundle", metavar="PATH", help="also check the bundle's CAs and CRLs")
    expiry.add_argument(
        "--warn-days", type=float, help="fixed threshold (default: 1/4 of lifetime, <= 7 days)"
    )
    _at(expiry)
    expiry.set_defaults(func=_guarded(_expiry))


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``certs`` command tree to ``euccs-gw``'s sub-parsers.

    Every leaf parser sets ``func`` (namespace -> exit code), as ``gateway.cli`` expects::

        sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        certs.cli.register(sub)

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers()``.

    Returns:
        The ``certs`` parser.
    """
    certs: argparse.ArgumentParser = subparsers.add_parser(
        "certs",
        help="PKI: national CAs, certificates, CRLs, the trust bundle",
        description="PKI tooling: national CAs, gateway/adapter/console certificates, "
        "CRLs and the federation trust bundle.",
    )
    _add_actions(certs)
    return certs


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``euccs-gw certs`` standalone; return the exit code.

    Args:
        argv: Arguments after ``certs`` (a leading ``"certs"`` is accepted and skipped);
            default ``sys.argv[1:]``.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["certs"]:
        arguments = arguments[1:]
    parser = argparse.ArgumentParser(
        prog="euccs-gw certs",
        description="PKI tooling: national CAs, certificates, CRLs and the trust bundle.",
    )
    _add_actions(parser)
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # usage errors (2) and --help (0)
        return exc.code if isinstance(exc.code, int) else 2
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
