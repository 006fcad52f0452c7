"""HTTPS through the vetted connections: the socket goes to a checked address while TLS still
verifies the certificate against the URL's hostname."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading

import imageserver
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chunk_worker.fetch import Fetcher
from chunk_worker.netpolicy import NetworkPolicy
from chunk_worker.settings import WorkerSettings
from tests.fixtures.imageserver import IMAGES_ONLY


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A test CA and a server certificate for `localhost` only."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("test ca")).issuer_name(_name("test ca"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "ca.pem", folder / "server.pem"


@pytest.fixture(scope="module")
def handshakes():
    """Every TLS handshake the server has begun (a client hello), certificate accepted or not."""
    return []


@pytest.fixture(scope="module")
def https_server(tls_files, handshakes):
    _, server_pem = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_pem)
    context.sni_callback = lambda sock, name, ctx: handshakes.append(name)
    server = imageserver.ImageServer(count=10, tls=context, public_host="localhost").start()
    yield server
    server.stop()


def tls_fetcher(ca_file, allow=("127.0.0.1/32", "::1/128"), attempts: int = 1) -> Fetcher:
    """Without the site files' requests: these tests count the image's own connections."""
    settings = WorkerSettings(item_deadline_seconds=10, fetch_attempts=attempts)
    return Fetcher(NetworkPolicy(list(allow)), settings, max_bytes=1 << 20, verify=str(ca_file), respect=IMAGES_ONLY)


def test_https_image_is_fetched_with_the_certificate_verified_on_the_hostname(tls_files, https_server):
    ca_file, _ = tls_files
    with tls_fetcher(ca_file) as fetcher:
        result = fetcher.fetch(https_server.url("/img/3.png"))
    assert result.ok and result.data == imageserver.make_image(3, "PNG")


def test_a_certificate_for_another_name_is_refused(tls_files, https_server):
    ca_file, _ = tls_files
    with tls_fetcher(ca_file) as fetcher:
        result = fetcher.fetch(f"https://127.0.0.1:{https_server.port}/img/3.png")
    assert result.reason == "connection_error"


def test_an_untrusted_certificate_is_refused_by_default(https_server):
    settings = WorkerSettings(item_deadline_seconds=10, fetch_attempts=1)
    with Fetcher(NetworkPolicy(["127.0.0.1/32", "::1/128"]), settings, max_bytes=1 << 20) as fetcher:
        assert fetcher.fetch(https_server.url("/img/3.png")).reason == "connection_error"


def test_https_names_are_checked_on_their_resolved_address(tls_files, https_server):
    ca_file, _ = tls_files
    before = https_server.hits("/img/4.png")
    with tls_fetcher(ca_file, allow=()) as fetcher:
        assert fetcher.fetch(https_server.url("/img/4.png")).reason == "blocked_address"
    assert https_server.hits("/img/4.png") == before


def test_a_certificate_for_another_name_is_tried_once(tls_files, https_server, handshakes):
    ca_file, _ = tls_files
    with tls_fetcher(ca_file, attempts=3) as fetcher:
        before = len(handshakes)
        assert fetcher.fetch(f"https://127.0.0.1:{https_server.port}/img/3.png").reason == "connection_error"
    assert len(handshakes) - before == 1


def test_an_untrusted_certificate_is_tried_once(https_server, handshakes):
    settings = WorkerSettings(item_deadline_seconds=10, fetch_attempts=3)
    with Fetcher(NetworkPolicy(["127.0.0.1/32", "::1/128"]), settings, max_bytes=1 << 20,
                 respect=IMAGES_ONLY) as fetcher:
        before = len(handshakes)
        assert fetcher.fetch(https_server.url("/img/5.png")).reason == "connection_error"
    assert len(handshakes) - before == 1


def test_a_server_that_hangs_up_in_the_handshake_is_retried(tls_files):
    """Not every TLS failure is final: a dropped handshake may pass on the next try."""
    ca_file, _ = tls_files
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def hang_up() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn.recv(1))
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        with tls_fetcher(ca_file, attempts=3) as fetcher:
            assert fetcher.fetch(f"https://localhost:{listener.getsockname()[1]}/img/1.png").reason == "connection_error"
    finally:
        listener.close()
    assert len(accepted) == 3
