"""Who may use a fleet. A Dask worker runs whatever a client of its scheduler sends it (tasks are
pickled functions), so a fleet is only as closed as its network: speedproof's answer is Dask's own,
TLS with mutual authentication — the scheduler, every worker and every client hold a certificate
signed by the lab's CA, and a peer without one is refused by the others.

The TLS files come from `--tls-ca-file/--tls-cert/--tls-key` (put into Dask's config for every role:
scheduler, worker, client) or from Dask's own config and its `DASK_DISTRIBUTED__COMM__TLS__*`
variables; addresses are then `tls://`. Safe by default: a worker or scheduler that would listen on
an address other than loopback in plaintext refuses to start unless told `--insecure-plaintext` (and
then warns on every start); a client of a plaintext scheduler on another host warns."""

from __future__ import annotations

import ipaddress
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from targets.errors import ConfigurationError
from targets.files_in import checked_input

ROLES = ("scheduler", "worker", "client")
TLS_OPTIONS = "--tls-ca-file, --tls-cert and --tls-key"


@dataclass(frozen=True)
class FleetTLS:
    """The TLS files given on the command line (all three, or none)."""

    ca_file: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @property
    def given(self) -> bool:
        return any(item is not None for item in (self.ca_file, self.cert, self.key))

    def check(self) -> None:
        if not self.given:
            return
        missing = [
            option
            for option, value in (("--tls-ca-file", self.ca_file), ("--tls-cert", self.cert), ("--tls-key", self.key))
            if value is None
        ]
        if missing:
            raise ConfigurationError(f"TLS needs {TLS_OPTIONS} together; {', '.join(missing)} missing")
        for option, value in (("--tls-ca-file", self.ca_file), ("--tls-cert", self.cert), ("--tls-key", self.key)):
            assert value is not None
            checked_input(value, option, ConfigurationError)
        _check_dates(self.cert)

    def apply(self) -> None:
        """Put the files into Dask's config for every role, with encryption required (this process)."""
        self.check()
        if not self.given:
            return
        import dask

        settings: dict[str, object] = {
            "distributed.comm.tls.ca-file": str(self.ca_file),
            "distributed.comm.require-encryption": True,
        }
        for role in ROLES:
            settings[f"distributed.comm.tls.{role}.cert"] = str(self.cert)
            settings[f"distributed.comm.tls.{role}.key"] = str(self.key)
        dask.config.set(settings)


def _check_dates(cert: Path | None) -> None:
    """Refuse a certificate that is expired or not valid yet: the other side refuses it during the
    handshake, and under TLS 1.3 this side then sees only a closed connection, never why."""
    try:
        import datetime

        from cryptography import x509
    except ImportError:  # no fleet extra: the fleet commands say which to install
        return
    from targets.files_in import CERTIFICATE_CAP_BYTES, read_input_bytes

    assert cert is not None
    data = read_input_bytes(cert, "--tls-cert", CERTIFICATE_CAP_BYTES, ConfigurationError)
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError as error:
        raise ConfigurationError(f"--tls-cert {cert}: not a PEM certificate ({error})") from None
    now = datetime.datetime.now(datetime.timezone.utc)
    if certificate.not_valid_after_utc < now:
        raise ConfigurationError(
            f"--tls-cert {cert}: expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; the fleet refuses "
            "it. Sign a new one with the fleet's CA (docs/guides/fleets.md: fleets over TLS)"
        )
    if certificate.not_valid_before_utc > now:
        raise ConfigurationError(
            f"--tls-cert {cert}: not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (check this "
            "host's clock)"
        )


def tls_configured(role: str = "client") -> bool:
    """Whether Dask's config (from the options, a config file or DASK_* variables) has a CA and a
    certificate for `role`."""
    try:
        import dask
    except ImportError:  # no fleet extra: the fleet commands say which to install
        return False
    return bool(dask.config.get("distributed.comm.tls.ca-file", None)) and bool(
        dask.config.get(f"distributed.comm.tls.{role}.cert", None)
    )


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost; None (every interface) and any other address are not."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def check_tls_for(scheme: str, role: str, who: str) -> None:
    """A tls:// address needs TLS files; TLS files need a tls:// address."""
    if scheme == "tls" and not tls_configured(role):
        raise ConfigurationError(
            f"{who}: a tls:// address needs the fleet's TLS files: {TLS_OPTIONS} (or Dask's config, "
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE and ..._CLIENT__CERT/KEY); see docs/guides/fleets.md"
        )
    if scheme == "tcp" and tls_configured(role):
        raise ConfigurationError(f"{who}: TLS files are given, but the address is tcp://; use tls:// with them")


def check_listening(host: str | None, tls: bool, insecure_plaintext: bool, who: str) -> None:
    """Refuse to listen in plaintext anywhere but loopback unless `insecure_plaintext`; then warn."""
    if tls or is_loopback(host):
        return
    where = f"on {host}" if host else "on every interface"
    if not insecure_plaintext:
        raise ConfigurationError(
            f"{who} would listen {where} in plaintext: anyone who reaches it could run code as this user. Give the "
            f"fleet's TLS files ({TLS_OPTIONS}, tls:// addresses; `speedproof cluster --local --tls DIR` makes a "
            "CA and a certificate), or listen on 127.0.0.1 (--host 127.0.0.1), or pass --insecure-plaintext on a "
            "network only your own hosts reach"
        )
    print(
        f"warning: {who} listens {where} in plaintext (--insecure-plaintext): any host that reaches it can run code "
        "as this user",
        file=sys.stderr,
    )


def warn_plaintext_client(scheduler: str) -> None:
    """A client of a plaintext scheduler on another host: what it sends can be read and changed."""
    from urllib.parse import urlsplit

    parts = urlsplit(scheduler)
    if parts.scheme == "tcp" and not is_loopback(parts.hostname):
        print(
            f"warning: {scheduler} is a plaintext scheduler on another host: artifacts and results travel "
            f"unencrypted and anyone who reaches it can run code on its workers; use tls:// with {TLS_OPTIONS}",
            file=sys.stderr,
        )


def check_bindable(host: str | None, who: str) -> None:
    """Raise ConfigurationError when `host` is not an address this host can listen on (Dask would log
    a traceback and fail to start)."""
    if not host:
        return
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise ConfigurationError(
            f"{who}: --host {host}: not an address or a name this host resolves ({error})"
        ) from None
    family, kind, protocol, _, address = infos[0]
    try:
        with socket.socket(family, kind, protocol) as probe:
            probe.bind(address)
    except OSError as error:
        raise ConfigurationError(
            f"{who}: --host {host}: cannot listen there ({error.strerror or error}); pass an address of this host"
        ) from None
