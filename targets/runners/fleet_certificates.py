"""Certificates for a lab's fleet, so the secure path is the easy one: a CA (kept in the folder to
sign more) and certificates signed by it, EC P-256, made with `cryptography`. `speedproof cluster
--local --tls DIR` makes `ca.pem`, `ca-key.pem`, `fleet.pem` and `fleet-key.pem` there when they are
missing; docs/guides/fleets.md shows the openssl commands that do the same for more hosts."""

from __future__ import annotations

import datetime
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets.errors import ConfigurationError
from targets.files_in import CERTIFICATE_CAP_BYTES, checked_input, read_input_bytes
from targets.files_out import write_output

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
    """The CA and a certificate in `folder`: used as they are when all four files are there; a
    certificate signed by the CA already there (a lab's own) when only the CA is; all four made
    when none is (keys readable by this user only). Nothing already there is ever replaced."""
    certificates = FleetCertificates(folder)
    _check_folder(folder)
    files = (certificates.ca_file, certificates.ca_key, certificates.cert, certificates.key)
    present = [path for path in files if os.path.lexists(path)]
    for path in present:
        checked_input(path, f"--tls {folder}: TLS file", ConfigurationError)
    if len(present) == len(files):
        _check_private(certificates.key, folder)
        return certificates
    if present and set(present) != {certificates.ca_file, certificates.ca_key}:
        held = ", ".join(path.name for path in present)
        missing = ", ".join(path.name for path in files if path not in present)
        raise ConfigurationError(
            f"--tls {folder}: holds {held} but not {missing}; speedproof uses a folder with all four files, signs "
            "a new fleet.pem with the CA of a folder that holds only ca.pem and ca-key.pem, or makes all four in an "
            "empty folder. It never replaces a file there: pass another folder, or complete this one "
            "(docs/guides/fleets.md: fleets over TLS)"
        )
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise ConfigurationError(f"making fleet certificates needs cryptography: {INSTALL_CRYPTOGRAPHY}") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(f"--tls {folder}: cannot make that folder ({error.strerror or error})") from None
    now = datetime.datetime.now(datetime.timezone.utc)
    pem = serialization.Encoding.PEM
    private = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()
    if present:  # the lab's CA: sign with it
        _check_private(certificates.ca_key, folder)
        ca, ca_key = _load_ca(certificates, folder)
        ca_name = ca.subject
    else:
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
    option = f"--tls {folder}:"
    if not present:
        write_output(certificates.ca_key, ca_key.private_bytes(pem, private, plain), option, mode=0o600, replace=False)
        write_output(certificates.ca_file, ca.public_bytes(pem), option, replace=False)
    write_output(certificates.key, key.private_bytes(pem, private, plain), option, mode=0o600, replace=False)
    write_output(certificates.cert, leaf.public_bytes(pem), option, replace=False)
    return certificates


def _check_folder(folder: Path) -> None:
    try:
        facts = os.stat(folder)
    except FileNotFoundError:
        return  # made
    except OSError as error:
        raise ConfigurationError(f"--tls {folder}: cannot be used ({error.strerror or error})") from None
    if not stat.S_ISDIR(facts.st_mode):
        raise ConfigurationError(f"--tls {folder}: is not a folder; pass a folder for the fleet's TLS files")
    if not os.access(folder, os.W_OK | os.X_OK) and not FleetCertificates(folder).exist():
        raise ConfigurationError(f"--tls {folder}: cannot write into it; pass a folder of yours")


def _check_private(key: Path, folder: Path) -> None:
    mode = os.stat(key).st_mode
    if mode & 0o077:
        raise ConfigurationError(
            f"--tls {folder}: {key.name} is readable by others (mode {stat.S_IMODE(mode):o}); a private key must "
            f"be this user's only: chmod 600 {key}"
        )


def _load_ca(certificates: FleetCertificates, folder: Path) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        ca = x509.load_pem_x509_certificate(
            read_input_bytes(certificates.ca_file, "CA certificate", CERTIFICATE_CAP_BYTES, ConfigurationError)
        )
        ca_key = serialization.load_pem_private_key(
            read_input_bytes(certificates.ca_key, "CA key", CERTIFICATE_CAP_BYTES, ConfigurationError), password=None
        )
    except (ValueError, TypeError) as error:
        raise ConfigurationError(
            f"--tls {folder}: ca.pem and ca-key.pem must be a PEM certificate and its unencrypted PEM key to sign a "
            f"fleet certificate with ({error})"
        ) from None
    return ca, ca_key
