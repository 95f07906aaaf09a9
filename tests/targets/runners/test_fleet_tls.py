"""A fleet that lets no one else in: a TLS scheduler and worker on 127.0.0.1 (`speedproof cluster
--local --tls DIR`, certificates made by speedproof with `cryptography`), a run measured through
them, and the refusals: a client without certificates, with a certificate from another CA, with a
plaintext address; a worker asked to listen beyond loopback in plaintext; agent steps and `put`
names that are not theirs. Every server binds to 127.0.0.1 only (the listening refusal is tested by
the check itself, before anything binds)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dask_fleet import MISSING, _speedproof, _wait_for_line
from tests.helpers import FAST_FLAGS

pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


def _tls_flags(folder: Path) -> list[str]:
    return [
        "--tls-ca-file",
        str(folder / "ca.pem"),
        "--tls-cert",
        str(folder / "fleet.pem"),
        "--tls-key",
        str(folder / "fleet-key.pem"),
    ]


@pytest.fixture(scope="module")
def tls_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("tls-fleet")
    cluster = subprocess.Popen(
        _speedproof("cluster", "--local", "--tls", str(folder / "certs"), "--port", "0", "--targets", "x86-cpu"),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = _wait_for_line(cluster, "scheduler at ", "speedproof cluster --local --tls")
        yield line.split()[2], folder / "certs"
    finally:
        cluster.terminate()
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cluster.kill()
            cluster.wait()


def _run(*arguments: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_speedproof(*arguments), capture_output=True, text=True, timeout=timeout, check=False)


def test_a_run_is_measured_through_a_tls_fleet(tls_fleet, tiny_conv_onnx, tmp_path):
    scheduler, certs = tls_fleet
    assert scheduler.startswith("tls://127.0.0.1:")
    assert oct((certs / "fleet-key.pem").stat().st_mode & 0o777) == "0o600"
    completed = _run(
        "bench",
        str(tiny_conv_onnx),
        "--cluster",
        scheduler,
        "--target",
        "x86-cpu",
        *_tls_flags(certs),
        "--batch",
        "1",
        *FAST_FLAGS,
        "--out",
        str(tmp_path),
    )
    assert completed.returncode == 0, completed.stderr
    [path] = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert record["cells"][0]["status"] == "ok" and "dask worker" in json.dumps(record)  # measured over there


def test_clients_without_the_fleets_certificate_are_refused(tls_fleet, tiny_conv_onnx, tmp_path):
    scheduler, _ = tls_fleet
    bench = ["bench", str(tiny_conv_onnx), "--target", "x86-cpu", "--batch", "1", *FAST_FLAGS, "--out", str(tmp_path)]
    # no certificate at all: refused before anything connects
    no_files = _run(*bench, "--cluster", scheduler)
    assert no_files.returncode == 2 and "a tls:// address needs the fleet's TLS files" in no_files.stderr
    # a certificate signed by another CA: the scheduler does not accept it
    other = tmp_path / "other-ca"
    from targets.runners.fleet_certificates import ensure_certificates

    ensure_certificates(other)
    assert (other / "fleet.pem").is_file()
    stranger = _run(*bench, "--cluster", scheduler, *_tls_flags(other))
    assert stranger.returncode != 0 and not list(tmp_path.glob("*.json"))
    assert "no Dask scheduler answers" in stranger.stderr or "certificate" in stranger.stderr, stranger.stderr
    # plaintext to the TLS port: no answer a client can use
    plaintext = _run(*bench, "--cluster", scheduler.replace("tls://", "tcp://"))
    assert plaintext.returncode != 0 and not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize("host", [None, "0.0.0.0", "10.1.2.3"])
def test_a_plaintext_worker_beyond_loopback_refuses_to_start(host, capsys):
    from tests.faults.conftest import usage_error

    arguments = [
        "worker",
        "--scheduler",
        "tcp://127.0.0.1:9",
        "--target",
        "x86-cpu",
        *(["--host", host] if host else []),
    ]
    err = usage_error(arguments, capsys)
    assert "would listen" in err and "in plaintext" in err and "--insecure-plaintext" in err


def test_the_listening_check_itself(capsys):
    from targets.errors import SpeedproofError
    from targets.runners.fleet_security import check_listening, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback(None) and not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_listening("127.0.0.1", tls=False, insecure_plaintext=False, who="w")
    check_listening("10.0.0.2", tls=True, insecure_plaintext=False, who="w")
    with pytest.raises(SpeedproofError, match="would listen on every interface in plaintext"):
        check_listening(None, tls=False, insecure_plaintext=False, who="w")
    check_listening("10.0.0.2", tls=False, insecure_plaintext=True, who="w")
    assert "warning: w listens on 10.0.0.2 in plaintext" in capsys.readouterr().err


def test_tls_options_come_together_and_name_what_is_missing(tmp_path, capsys):
    from tests.faults.conftest import usage_error

    base = ["worker", "--scheduler", "tls://127.0.0.1:9", "--target", "x86-cpu", "--host", "127.0.0.1"]
    assert "--tls-key missing" in usage_error(
        [*base, "--tls-ca-file", str(tmp_path), "--tls-cert", str(tmp_path)], capsys
    )
    absent = [
        *base,
        "--tls-ca-file",
        str(tmp_path / "ca.pem"),
        "--tls-cert",
        str(tmp_path / "c"),
        "--tls-key",
        str(tmp_path / "k"),
    ]
    err = usage_error(absent, capsys)
    assert "--tls-ca-file" in err and "file not found" in err


def test_only_the_agents_steps_run_and_put_stays_in_the_cache(tmp_path, monkeypatch):
    import io

    from targets.runners import board_agent
    from targets.runners.cluster_worker import run_agent_step

    refused = run_agent_step(["sh", "-c", "touch /tmp/x"], b"", 10)
    assert refused["returncode"] == 2 and b"not a board agent step" in refused["stderr"]
    assert run_agent_step(["has", "--help", "x"], b"", 10)["returncode"] == 2
    monkeypatch.setenv("SPEEDPROOF_BOARD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="not a sha256"):
        board_agent.put("../../etc", "passwd", io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="not a file name"):
        board_agent.put("0" * 64, "../escape", io.BytesIO(b"x"))
    assert not (tmp_path / "escape").exists()


def _expired_certificate(certs: Path, folder: Path) -> Path:
    """A certificate signed by the fleet's own CA that expired yesterday (with its key), in `folder`."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((certs / "ca-key.pem").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    folder.mkdir()
    (folder / "ca.pem").write_bytes((certs / "ca.pem").read_bytes())
    (folder / "fleet.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "fleet-key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder


def test_a_misconfigured_worker_says_why_instead_of_hanging(tls_fleet, tmp_path):
    """Dask retries a worker's registration forever and logs why only below WARNING: each of these
    hung in silence. Now each ends at once, saying what is wrong."""
    scheduler, certs = tls_fleet
    from targets.runners.fleet_certificates import ensure_certificates

    other = ensure_certificates(tmp_path / "other-ca").folder
    expired = _expired_certificate(certs, tmp_path / "expired")
    worker = ["worker", "--target", "x86-cpu", "--host", "127.0.0.1"]
    cases = {
        "another CA's certificate and trust": ([*worker, "--scheduler", scheduler, *_tls_flags(other)], "refused the"),
        "a trust store of another CA": (
            [*worker, "--scheduler", scheduler, "--tls-ca-file", str(other / "ca.pem"), *_tls_flags(certs)[2:]],
            "this side refused the scheduler's certificate",
        ),
        "an expired certificate": (
            [*worker, "--scheduler", scheduler, *_tls_flags(expired)],
            "fleet.pem: expired on ",
        ),
        "plaintext to a TLS scheduler": (
            [*worker, "--scheduler", scheduler.replace("tls://", "tcp://")],
            "if it is a TLS scheduler, use its tls:// address",
        ),
    }
    for name, (arguments, said) in cases.items():
        completed = _run(*arguments, timeout=60)  # it hung forever before
        assert completed.returncode == 2, (name, completed.stderr)
        assert said in completed.stderr and "Traceback" not in completed.stderr, (name, completed.stderr)


def test_a_client_is_told_its_certificate_expired(tls_fleet, tiny_conv_onnx, tmp_path):
    scheduler, certs = tls_fleet
    expired = _expired_certificate(certs, tmp_path / "expired")
    completed = _run("bench", str(tiny_conv_onnx), "--cluster", scheduler, "--target", "x86-cpu", *_tls_flags(expired))
    assert completed.returncode == 2 and "fleet.pem: expired on " in completed.stderr, completed.stderr
