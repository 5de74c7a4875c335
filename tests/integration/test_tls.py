"""HTTPS with certificates made here: a real ``queueapp serve`` over TLS, a client and
``queueapp worker`` that trust its CA (``--cacert``), a client that does not, and a
certificate replaced on SIGHUP without a restart."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from conftest import ServeProcess, free_port, wait_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = Path(__file__).parent.parent


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(folder: Path, label: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(label)).issuer_name(_name(label))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = folder / f"{label}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_server_cert(folder: Path, ca_key, ca_cert, label: str) -> tuple[Path, Path, bytes]:
    """A certificate for 127.0.0.1 signed by the CA; returns its files and DER bytes."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(label)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def tls_files(tmp_path):
    ca_path, ca_key, ca_cert = make_ca(tmp_path, "test-ca")
    cert, key, der = make_server_cert(tmp_path, ca_key, ca_cert, "first")
    return {"ca": ca_path, "ca_key": ca_key, "ca_cert": ca_cert, "cert": cert, "key": key, "der": der,
            "folder": tmp_path}


def _https(server: ServeProcess) -> str:
    return server.url.replace("http://", "https://")


async def _peer_certificate(url: str, ca: Path) -> bytes:
    host, port = url.removeprefix("https://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), ssl=ssl.create_default_context(cafile=str(ca)))
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return der


async def test_https_serves_trusting_clients_refuses_others_and_reloads_on_sighup(tmp_path, tls_files):
    server = ServeProcess(tmp_path / "q.db", "--tls-cert", str(tls_files["cert"]), "--tls-key", str(tls_files["key"]))
    _start_https(server)
    try:
        url = _https(server)
        trusting = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(tls_files["ca"])))
        async with aiohttp.ClientSession(connector=trusting) as http:
            async with http.post(f"{url}/queues/jobs", json={"name": "x"}) as r:
                assert r.status == 201
        async with aiohttp.ClientSession() as untrusting:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await untrusting.get(f"{url}/livez")
        assert await _peer_certificate(url, tls_files["ca"]) == tls_files["der"]
        # a new certificate in the same files, then SIGHUP: new connections get it
        _, _, renewed = make_server_cert(tls_files["folder"], tls_files["ca_key"], tls_files["ca_cert"], "second")
        server.proc.send_signal(signal.SIGHUP)

        async def renewed_served():
            return await _peer_certificate(url, tls_files["ca"]) == renewed

        await wait_for(renewed_served)
        assert server.proc.poll() is None
    finally:
        server.terminate()


def test_the_worker_leases_and_completes_over_https_with_cacert(tmp_path, tls_files):
    import json
    import urllib.request

    server = ServeProcess(tmp_path / "q.db", "--tls-cert", str(tls_files["cert"]), "--tls-key", str(tls_files["key"]))
    _start_https(server)
    url = _https(server)
    context = ssl.create_default_context(cafile=str(tls_files["ca"]))
    request = urllib.request.Request(f"{url}/queues/jobs", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"name": "crunch", "data": {"seed": "tls", "slices": 1}}).encode())
    with urllib.request.urlopen(request, context=context, timeout=10) as r:
        job_id = json.loads(r.read())["id"]
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    worker = subprocess.Popen([sys.executable, "-m", "queueapp", "worker", "--url", url,
                               "--cacert", str(tls_files["ca"]), "--handlers", "worker_handlers",
                               "--grace-ms", "1000"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        import time

        deadline = time.monotonic() + 30
        state = None
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{url}/queues/jobs/{job_id}", context=context, timeout=10) as r:
                state = json.loads(r.read())["state"]
            if state == "completed":
                break
            time.sleep(0.1)  # another process's progress: nothing to wait on but its answers
        assert state == "completed"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
        server.terminate()


def test_a_certificate_that_cannot_load_is_refused_at_start(tmp_path, tls_files):
    (tmp_path / "bad.pem").write_text("not a certificate")
    result = subprocess.run([sys.executable, "-m", "queueapp", "serve", "--db", str(tmp_path / "q.db"),
                             "--port", str(free_port()), "--tls-cert", str(tmp_path / "bad.pem"),
                             "--tls-key", str(tls_files["key"])],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "cannot use tls_cert/tls_key" in result.stderr
    result = subprocess.run([sys.executable, "-m", "queueapp", "serve", "--db", str(tmp_path / "q.db"),
                             "--tls-cert", str(tls_files["cert"])], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "tls_cert and tls_key go together" in result.stderr


def _start_https(server: ServeProcess) -> None:
    """ServeProcess.start waits on http://; over TLS, wait on the log line instead."""
    import time

    log = server.log_path.open("ab")
    server.proc = subprocess.Popen(
        [sys.executable, "-m", "queueapp", "serve", "--db", str(server.db), "--port", str(server.port), *server.args],
        stdout=log, stderr=log, env=server.env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(server.log_path.read_text())
        if "appliance started" in server.log_path.read_text():
            return
        time.sleep(0.05)  # a child process's readiness: no event to wait on
    raise RuntimeError(server.log_path.read_text())
