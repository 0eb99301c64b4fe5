"""Certificates and keys for a throw-away control plane: one CA, the API server's
serving certificate, an admin client certificate (``system:masters``), the client
certificate the API server shows to node agents, and the service-account signing key;
and self-signed serving certificates for the process node's kubelet port.

EC P-256 keys: generated in milliseconds, unlike RSA, so every cluster gets fresh ones.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class Pki:
    """Paths of the files written by ``write_pki``."""

    dir: Path

    def file(self, name: str) -> Path:
        """``pki.file("ca.crt")``: ca, apiserver, admin, kubelet-client, node (.crt/.key); sa.key/.pub."""
        return self.dir / name


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server_names: tuple[str, ...] = (),
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name = issuer[0].subject if issuer else subject
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    usages = []
    if server_names:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        sans: list[x509.GeneralName] = []
        for name in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _write_pair(
    pki_dir: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    (pki_dir / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(pki_dir / f"{stem}.key", key)


def write_pki(pki_dir: Path, *, service_ip: str = "10.0.0.1") -> Pki:
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_cert = _issue(_name("shiftboss-local-ca"), ca_key, None, ca=True)
    _write_pair(pki_dir, "ca", ca_cert, ca_key)
    ca = (ca_cert, ca_key)

    names = (
        "127.0.0.1",
        "localhost",
        service_ip,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    )
    key = _key()
    _write_pair(
        pki_dir, "apiserver", _issue(_name("kube-apiserver"), key, ca, server_names=names), key
    )
    key = _key()
    _write_pair(
        pki_dir, "admin", _issue(_name("admin", "system:masters"), key, ca, client=True), key
    )
    key = _key()
    cert = _issue(_name("kube-apiserver-kubelet-client", "system:masters"), key, ca, client=True)
    _write_pair(pki_dir, "kubelet-client", cert, key)
    sa_key = _key()
    _write_key(pki_dir / "sa.key", sa_key)
    (pki_dir / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Pki(pki_dir)


def write_self_signed(directory: Path, stem: str, names: tuple[str, ...]) -> tuple[Path, Path]:
    """A self-signed serving certificate (the API server does not verify kubelet certificates)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = _key()
    _write_pair(directory, stem, _issue(_name(stem), key, None, server_names=names), key)
    return directory / f"{stem}.crt", directory / f"{stem}.key"
