"""The webhook transport against real receivers on 127.0.0.1: verified TLS to the URL's host while
connecting to the checked address, kept-alive connections that survive a receiver closing them, and one
deadline for the whole POST."""

from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import socket
import ssl
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import pytest

from webhooks import transport
from tests.webhooks.conftest import IPV6_AROUND_PRIVATE_IPV4, IPV6_AROUND_PUBLIC_IPV4

HOST = "hooks.mittis.test"


@pytest.fixture(autouse=True)
def local_dns(monkeypatch, settings):
    """hooks.mittis.test (and other.mittis.test) resolve to 127.0.0.1, which is allowed here."""
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = ["127.0.0.1"]
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host.endswith(".mittis.test"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA and a certificate it signed for hooks.mittis.test: (CA file, cert file, key file)."""
    folder = tmp_path_factory.mktemp("pki")
    now = datetime.now(timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Mittis test CA")).issuer_name(_name("Mittis test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - timedelta(hours=1))
          .not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(_name(HOST)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return tuple(str(path) for path in paths)


class Peer:
    """A receiver whose behaviour a test sets: the protocol, whether it closes after answering, its reply."""

    def __init__(self):
        self.requests: list[dict] = []  # host header, peer address, SNI
        self.http_version, self.close_after_answer, self.reply, self.drip = "HTTP/1.1", False, b"ok", 0.0
        self.sni: list[str | None] = []

    def serve(self, tls_files=None):
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = peer.http_version  # HTTP/1.1 keeps the connection open for the next request

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                peer.requests.append({"host": self.headers["Host"], "from": self.client_address})
                if peer.drip:  # the status line a byte at a time, each in time, the whole too slow
                    for byte in b"HTTP/1.1 200 OK\r\n":
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(peer.drip)
                self.send_response(200)
                self.send_header("Content-Length", str(len(peer.reply)))
                self.end_headers()
                self.wfile.write(peer.reply)
                if peer.close_after_answer:  # without saying so: the client finds out when it reuses it
                    self.close_connection = True

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls_files:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_files[0], tls_files[1])
            context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            scheme = "https"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.server = server
        return f"{scheme}://{HOST}:{server.server_address[1]}/hooks"


@pytest.fixture
def peer():
    made = Peer()
    yield made
    if hasattr(made, "server"):
        made.server.shutdown()
        made.server.server_close()


def post(url, **options):
    return transport.post(url, body=b'{"type":"message.sent"}', headers={}, timeout=options.get("timeout", 5.0))


def test_https_is_verified_for_the_urls_host_and_sent_to_the_checked_address(peer, pki, settings):
    settings.MITTIS_WEBHOOK_CA_FILE = pki[0]
    url = peer.serve(tls_files=pki[1:])

    result = post(url)

    assert (result.status, result.error, result.body) == (200, "", "ok")
    assert peer.sni == [HOST] and peer.requests[0]["host"] == url.split("/")[2]


def test_a_certificate_no_trusted_ca_signed_fails_as_tls(peer, pki):
    url = peer.serve(tls_files=pki[1:])  # MITTIS_WEBHOOK_CA_FILE unset: the system's CAs only

    result = post(url)

    assert result.status is None and result.error.startswith("TLS failed:") and "verify failed" in result.error
    assert peer.requests == []


def test_a_certificate_for_another_host_fails_as_tls(peer, pki, settings):
    settings.MITTIS_WEBHOOK_CA_FILE = pki[0]
    url = peer.serve(tls_files=pki[1:]).replace(HOST, "other.mittis.test")

    result = post(url)

    assert result.status is None and result.error.startswith("TLS failed:") and peer.requests == []


@pytest.mark.parametrize("http_version, close_after_answer", [("HTTP/1.0", False), ("HTTP/1.1", True)],
                         ids=["receiver-says-it-closes", "receiver-closes-unannounced"])
def test_a_receiver_closing_after_each_answer_gets_every_post(peer, http_version, close_after_answer):
    peer.http_version, peer.close_after_answer = http_version, close_after_answer
    url = peer.serve()

    with transport.Connection(url, timeout=5.0) as connection:
        results = []
        for _ in range(3):
            results.append(connection.post(body=b"{}", headers={}))
            time.sleep(0.05)  # the receiver's close reaches us before the next POST, as between real events

    assert [r.status for r in results] == [200, 200, 200] and {r.error for r in results} == {""}
    assert len({r["from"] for r in peer.requests}) == 3  # a new connection for each


def test_a_kept_alive_connection_carries_every_post_even_after_a_long_answer(peer):
    peer.reply = b"x" * 200_000
    url = peer.serve()

    with transport.Connection(url, timeout=5.0) as connection:
        results = [connection.post(body=b"{}", headers={}) for _ in range(3)]
        peer.reply = b"short"
        results += [connection.post(body=b"{}", headers={}) for _ in range(3)]

    assert [r.status for r in results] == [200] * 6 and [len(r.body) for r in results] == [2048] * 3 + [5] * 3
    # The long answers are not read to the end: each costs a connection; the short ones share the last.
    assert len({r["from"] for r in peer.requests}) == 4


def test_the_timeout_bounds_the_whole_post_not_each_read(peer):
    peer.drip = 0.1  # 17 bytes of status line at 0.1 s each: every read in time, the whole 1.7 s
    url = peer.serve()
    started = time.monotonic()

    result = post(url, timeout=0.5)

    assert result.status is None and result.error == "Timed out after 0.5 s."
    assert time.monotonic() - started < 1.0


def test_an_address_that_is_not_allowed_is_refused_before_connecting(peer, settings):
    url = peer.serve()
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = []

    result = post(url)

    assert result.status is None and "private, loopback or link-local" in result.error and peer.requests == []


@pytest.mark.parametrize("address", IPV6_AROUND_PRIVATE_IPV4)
def test_a_host_resolving_to_an_ipv6_form_of_a_private_address_is_refused_before_connecting(dns, address,
                                                                                              monkeypatch):
    dns["embedded.mittis.test"] = address
    connects = []
    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: connects.append(args))

    result = post("https://embedded.mittis.test/hooks")

    assert result.status is None and "private, loopback or link-local" in result.error and connects == []


@pytest.mark.parametrize("address", IPV6_AROUND_PUBLIC_IPV4)
def test_a_host_resolving_to_an_ipv6_form_of_a_public_address_is_connected_to(dns, address, monkeypatch):
    dns["embedded.mittis.test"] = address
    connects = []

    def create_connection(address, *args, **kwargs):
        connects.append(address)
        raise ConnectionRefusedError

    monkeypatch.setattr(socket, "create_connection", create_connection)

    result = post("https://embedded.mittis.test/hooks")

    assert result.error == "Connection refused." and connects == [(address, 443)]
