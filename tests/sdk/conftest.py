"""The SDK against the real server: the production web server on the test database (one per test module), the
run's broker queue, and a real Celery worker and webhook receiver where a test asks for them. `Cutter` stands
where a network fault would: between the SDK and the server."""

from dataclasses import dataclass, field
import socket
import threading
import uuid

from django.conf import settings
import pytest

from mittis.redis import redis_client
from tests.conftest import SEED
from tests.factories import AccountFactory, SenderFactory, api_key_for
from tests.test_serving import web_server
from tests.webhooks.conftest import endpoint, fast_retries, receiver, worker  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def sdk_server(django_db_setup, django_db_blocker):
    """The Procfile's web server on the test database, publishing onto this run's queues, with a Redis prefix of
    its own: (its URL, the prefix)."""
    prefix = f"mittis-test-sdk:{uuid.uuid4().hex[:12]}"
    with web_server("Procfile", WEB_CONCURRENCY="1", MITTIS_RATE_LIMIT_PREFIX=prefix,
                    MITTIS_QUEUE_PREFIX=settings.MITTIS_QUEUE_PREFIX) as (_, port):
        yield f"http://127.0.0.1:{port}", prefix


@pytest.fixture
def server_url(sdk_server, settings):
    """The module's server, its Redis keys as new. This process (an in-process worker) shares its prefix: a
    dispatcher's mark that the server takes is the one the worker clears, and a mark an earlier test left
    (its dispatcher drained unrun) cannot hold this test's sends back."""
    url, prefix = sdk_server
    client = redis_client()
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    settings.MITTIS_RATE_LIMIT_PREFIX = prefix
    return url


@pytest.fixture
def sdk_account(transactional_db):
    """An account that owns SEED's sender, committed where the server sees it."""
    account = AccountFactory(name="SDK Plumbing", rate_limit=10_000)
    SenderFactory(account=account, value=SEED["from"])
    return account


@pytest.fixture
def sdk_key(sdk_account):
    return api_key_for(sdk_account)


@pytest.fixture
def client(sdk_key, server_url):
    from mittis_sdk import Mittis

    with Mittis(sdk_key, base_url=server_url) as client:
        yield client


@dataclass
class Cutter:
    """A TCP relay in front of the server. Each connection's request is relayed whole and the server's answer
    read whole; then, while `cuts` is above zero, the client's connection is closed without the answer (the
    server has committed, the client never hears), else the answer is relayed. `heads` keeps each request's
    head (request line and headers), in order."""

    upstream: tuple[str, int]
    cuts: int = 0
    heads: list[str] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        with conn:
            while True:  # one request at a time on a kept-alive connection
                request = _read_message(conn)
                if request is None:
                    return
                head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1")
                with socket.create_connection(self.upstream, timeout=30) as upstream:
                    upstream.sendall(request)
                    answer = _read_message(upstream)
                with self.lock:
                    self.heads.append(head)
                    cut = self.cuts > 0
                    self.cuts -= cut
                if cut or answer is None:
                    return
                conn.sendall(answer)

    def header(self, index: int, name: str) -> str | None:
        for line in self.heads[index].split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


def _read_message(sock: socket.socket) -> bytes | None:
    """One HTTP/1.1 message with a Content-Length body (what httpx sends and the server answers), or None when
    the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def cutter(server_url):
    host, port = server_url.removeprefix("http://").split(":")
    listener = socket.create_server(("127.0.0.1", 0))
    state = Cutter(upstream=(host, int(port)))
    state.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    threading.Thread(target=state.serve, args=(listener,), daemon=True).start()
    yield state
    listener.close()
