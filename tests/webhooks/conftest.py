"""A real HTTP receiver on 127.0.0.1 for webhooks to reach, and a real Celery worker to send them."""

from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import socket
import threading
import time

import pytest

from messaging.services import send
from tests.conftest import drain_queued_tasks, in_process_worker


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    peer: tuple = ()  # the sender's address and port: one per TCP connection


@dataclass
class Receiver:
    """Records every request; answers from `script` in order (status, headers), then `default_status`."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict]] = field(default_factory=list)
    default_status: int = 200
    delay: float = 0.0  # seconds to wait before answering
    reply: bytes | None = None  # the body to answer with; "received with <status>" when None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, received: Received) -> tuple[int, dict]:
        with self.lock:
            self.requests.append(received)
            return self.script.pop(0) if self.script else (self.default_status, {})

    def events(self, type_: str | None = None) -> list[Received]:
        import json
        return [r for r in self.requests if type_ is None or json.loads(r.body)["type"] == type_]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return list(self.requests)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.requests)} requests arrived, not {count}, in {timeout} s")


@pytest.fixture
def receiver(settings):
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = ["127.0.0.1"]  # the receiver runs here
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps a connection open for the next request, as real receivers do

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            status, headers = state.answer(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                                    self.client_address))
            time.sleep(state.delay)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            reply = state.reply if state.reply is not None else f"received with {status}".encode()
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def fast_retries(settings):
    settings.MITTIS_WEBHOOK_RETRY_SCHEDULE = [0.2, 0.4, 0.6]


@pytest.fixture
def worker(settings, monkeypatch, fast_retries):
    settings.MITTIS_SANDBOX_REPORT_DELAY = 0.2
    monkeypatch.setattr(send, "SEND_RETRY_BASE_SECONDS", 0.2)
    # A task an earlier test left on this run's queue (a batch dispatcher) would claim this test's messages.
    drain_queued_tasks()
    with in_process_worker():
        yield


@pytest.fixture
def endpoint(api, receiver):
    """An endpoint for every event, created through the API: (its id, its secret)."""
    created = api.post("/v1/webhook_endpoints", {"url": receiver.url}, format="json")
    assert created.status_code == 201, created.json()
    return created.json()["id"], created.json()["secret"]


# Every IPv6 form that carries an IPv4 address (webhooks/transport.py): around private, loopback or link-local
# IPv4 addresses, refused as those would be; around a public one, judged as that one and allowed. NAT64's
# local-use prefix is never reachable from outside its own network: refused whatever it holds.
IPV6_FORMS = {  # form: (around 10.0.0.1, 169.254.169.254, 127.0.0.1 or 192.168.1.20; around 8.8.8.8)
    "nat64": (["64:ff9b::a00:1", "64:ff9b::a9fe:a9fe"], "64:ff9b::808:808"),
    "nat64-local-use": (["64:ff9b:1::a00:1", "64:ff9b:1:a00:0:100::"], None),  # the /96 and /48 layouts
    "6to4": (["2002:a00:1::", "2002:7f00:1::"], "2002:808:808::"),
    "teredo": (["2001:0:808:808::f5ff:fffe", "2001:0:a9fe:a9fe::f7f7:f7f7"],  # the client; the server
               "2001:0:808:808::f7f7:f7f7"),
    "ipv4-compatible": (["::7f00:1", "::a9fe:a9fe"], "::808:808"),
    "siit": (["::ffff:0:7f00:1", "::ffff:0:c0a8:114"], "::ffff:0:808:808"),
    "ipv4-mapped": (["::ffff:7f00:1", "::ffff:a9fe:a9fe"], "::ffff:808:808"),
}
IPV6_AROUND_PRIVATE_IPV4 = [pytest.param(address, id=f"{form}-{address}")
                            for form, (private, _public) in IPV6_FORMS.items() for address in private]
IPV6_AROUND_PUBLIC_IPV4 = [pytest.param(public, id=f"{form}-{public}")
                           for form, (_private, public) in IPV6_FORMS.items() if public]


@pytest.fixture
def dns(monkeypatch):
    """A name resolves to the address a test puts in the dict this returns (the outside world's DNS, stubbed);
    other names as before."""
    names: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            if ":" in names[host]:
                return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (names[host], port, 0, 0))]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names
