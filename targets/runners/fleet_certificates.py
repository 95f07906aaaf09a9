"""Certificates for a lab's fleet, so the secure path is the easy one: a CA (kept in the folder to
sign more) and certificates signed by it, EC P-256, made with `cryptography`. `speedproof cluster
--local --tls DIR` makes `ca.pem`, `ca-key.pem`, `fleet.pem` and `fleet-key.pem` there when they are
missing; the README shows the openssl commands that do the same for more hosts."""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from targets.errors import ConfigurationError

VALID_DAYS = 365
INSTALL_CRYPTOGRAPHY = "pip install 'speedproof[fleet]'"


@dataclass(frozen=True)
class FleetCertificates:
    folder: Path

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca-key.pem"

    @property
    def cert(self) -> Path:
        return self.folder / "fleet.pem"

    @property
    def key(self) -> Path:
        return self.folder / "fleet-key.pem"

    def exist(self) -> bool:
        return all(path.is_file() for path in (self.ca_file, self.cert, self.key))


def ensure_certificates(folder: Path) -> FleetCertificates:
    """The CA and a certificate in `folder`, made when missing (keys readable by this user only)."""
    certificates = FleetCertificates(folder)
    if certificates.exist():
        return certificates
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise ConfigurationError(f"making fleet certificates needs cryptography: {INSTALL_CRYPTOGRAPHY}") from None
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "speedproof fleet CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(socket.gethostname())]
    import ipaddress

    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"speedproof fleet {socket.gethostname()}")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    private = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()
    _write(certificates.ca_key, ca_key.private_bytes(pem, private, plain), secret=True)
    _write(certificates.key, key.private_bytes(pem, private, plain), secret=True)
    _write(certificates.ca_file, ca.public_bytes(pem))
    _write(certificates.cert, leaf.public_bytes(pem))
    return certificates


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
