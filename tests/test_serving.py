"""The web server as production (Procfile) and `make run` (Procfile.dev) start it, in real processes on the
test database: slow and idle clients cannot hold it, its own refusals are in the error shape, chunked bodies
are read, no key reaches its output, and its connections are spread over its processes."""

from base64 import b64encode
from contextlib import contextmanager
import http.client
import json
import os
from pathlib import Path
import re
import select
import socket
import subprocess
import threading
import time

from django.conf import settings
from django.db import connection
import pytest

from messaging.models import Message
from mittis import versions
from mittis.asgi import BODY_TIMEOUT, MAX_HEADER_BYTES, MAX_TARGET_BYTES
from mittis.ops.localhost import child_pids, stop_group, wait_for_http, web_command
from mittis.serve import HEAD_BUFFER_BYTES, HEADER_TIMEOUT
from tests.conftest import free_port
from tests.factories import AccountFactory, SenderFactory, api_key_for

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 40
WORKERS = 2
SEED = {"from": "+18045550142", "to": "+18045550199", "body": "Your technician is 15 minutes out."}
PROCFILES = ["Procfile", "Procfile.dev"]  # production's web server and `make run`'s


@contextmanager
def web_server(procfile: str = "Procfile", *options: str, output=subprocess.DEVNULL, **env):
    """The Procfile's web server on the test database (WORKERS processes for production's), listening on a
    free port unless `options` say where; yields the server's process and port once it answers."""
    db = connection.settings_dict
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "WEB_CONCURRENCY": str(WORKERS), "LOG_LEVEL": "WARNING", "MITTIS_WEBHOOK_ALLOWED_PRIVATE": "127.0.0.1",
           "MITTIS_RATE_LIMIT_PREFIX": settings.MITTIS_RATE_LIMIT_PREFIX, **env}
    server = subprocess.Popen(web_command(*(options or ("--bind", f"127.0.0.1:{port}")), procfile=procfile),
                              cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if not options:
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
        yield server, port
    finally:
        stop_group(server)


def booted_workers(server: subprocess.Popen, count: int = WORKERS) -> list[int]:
    """The server's worker processes, once `count` have started (the first may answer before the second)."""
    deadline = time.monotonic() + 30
    while len(workers := child_pids(server.pid)) < count:
        assert time.monotonic() < deadline, f"{len(workers)} of {count} workers booted"
        time.sleep(0.1)
    return workers


def request(port: int, method: str, path: str, body=None, headers=None, timeout: float = 10):
    """(status, headers, body) of one request on a new connection."""
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        client.request(method, path, body=body, headers=headers or {})
        response = client.getresponse()
        return response.status, response.headers, response.read()
    finally:
        client.close()


@pytest.fixture
def sender_key(transactional_db):
    """A test key of an account that owns SEED's sender, committed where the server sees it."""
    account = AccountFactory(rate_limit=10_000)
    SenderFactory(account=account, value=SEED["from"])
    return api_key_for(account)


def send(port: int, key: str, idempotency_key: str, timeout: float):
    return request(port, "POST", "/v1/messages", json.dumps(SEED),
                   {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                    "Idempotency-Key": idempotency_key}, timeout=timeout)


# --- slow and idle clients ---------------------------------------------------------------------------
SLOW_CLIENTS = 200


class SlowClients:
    """SLOW_CLIENTS connections to `port`, a third each: connected and silent; a request line and part of
    the headers, then silence; whole headers and a body of 100 bytes, one byte every half second."""

    def __init__(self, port: int):
        self.idle, self.partial, self.bodies = [], [], []
        for n in range(SLOW_CLIENTS):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            if n % 3 == 0:
                self.idle.append(client)
            elif n % 3 == 1:
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: sl")
                self.partial.append(client)
            else:
                client.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                               b"\r\nContent-Length: 100\r\n\r\n{")
                self.bodies.append(client)
        self.bodies_started = time.monotonic()
        self._stop = threading.Event()
        self._dribbler = threading.Thread(target=self._dribble, daemon=True)
        self._dribbler.start()

    def _dribble(self):
        while not self._stop.wait(0.5):
            for client in self.bodies:
                try:
                    client.sendall(b" ")
                except OSError:  # answered and closed
                    pass

    def answers_to_bodies(self, within: float) -> list[bytes]:
        """What each slow body's connection received before it was closed, waiting up to `within` seconds."""
        received = {client: b"" for client in self.bodies}
        open_ = set(self.bodies)
        deadline = self.bodies_started + within
        while open_ and time.monotonic() < deadline:
            readable, _, _ = select.select(list(open_), [], [], max(0.0, deadline - time.monotonic()))
            for client in readable:
                try:
                    data = client.recv(65536)
                except OSError:
                    data = b""
                received[client] += data
                if not data:
                    open_.discard(client)
        return list(received.values())

    def close(self):
        self._stop.set()
        self._dribbler.join()
        for client in self.idle + self.partial + self.bodies:
            client.close()


@pytest.mark.parametrize("procfile", PROCFILES)
def test_slow_and_idle_clients_cannot_hold_the_api(procfile, sender_key):
    with web_server(procfile) as (_server, port):
        for n in range(8):  # every thread warm: its database connection open, its statements prepared
            assert send(port, sender_key, f"warm-{n}", timeout=10)[0] == 201
        clients = SlowClients(port)
        try:
            time.sleep(1)  # long enough for each of them to be taken by a thread, if one takes them

            started = time.monotonic()
            status, _, _ = request(port, "GET", "/healthz", timeout=1)
            assert status == 200 and time.monotonic() - started < 1
            started = time.monotonic()
            status, _, body = send(port, sender_key, "under-siege", timeout=1)
            assert status == 201 and time.monotonic() - started < 1, body

            # Each slow body is cut off once BODY_TIMEOUT has passed since its headers, however steadily its
            # bytes come, with a 408 in the error shape.
            answers = clients.answers_to_bodies(within=BODY_TIMEOUT + 3)
            assert time.monotonic() - clients.bodies_started >= BODY_TIMEOUT - 0.5
            for answer in answers:
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
                assert json.loads(body)["error"]["code"] == "request_timeout"
        finally:
            clients.close()
        assert Message.objects.count() == 9  # the slow bodies sent nothing


def test_idle_and_incomplete_connections_are_closed_after_the_header_timeout():
    with web_server() as (_server, port):
        idle = socket.create_connection(("127.0.0.1", port))
        partial = socket.create_connection(("127.0.0.1", port))
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        for client in (idle, partial):
            client.settimeout(HEADER_TIMEOUT + 3)
            assert client.recv(1024) == b""  # closed, having answered nothing
            client.close()
        assert HEADER_TIMEOUT - 0.5 <= time.monotonic() - started < HEADER_TIMEOUT + 3


# --- the server's own answers ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def production(django_db_setup, django_db_blocker):
    with web_server() as (_server, port):
        yield port


def test_its_own_refusals_are_in_the_error_shape_where_it_answers_them(production):
    long_target = "/v1/messages?to=" + "1" * MAX_TARGET_BYTES
    big_headers = {f"X-Filler-{n}": "x" * 1000 for n in range(MAX_HEADER_BYTES // 1000 + 1)}
    for (method, path, headers, body), (status, code) in [
        (("GET", long_target, {}, None), (414, "uri_too_long")),
        (("GET", "/v1/messages", big_headers, None), (431, "headers_too_large")),
        (("POST", "/v1/messages", {"Content-Type": "application/json"}, b"{" + b" " * 1024 * 1024 + b"}"),
         (413, "request_too_large")),
    ]:
        answer_status, answer_headers, answer_body = request(production, method, path, body, headers)
        error = json.loads(answer_body)["error"]
        assert (answer_status, error["code"]) == (status, code)
        assert answer_headers["Request-Id"] == error["request_id"]
        assert answer_headers["Mittis-Version"] == versions.current()  # answered before anyone is authenticated

    # Past the buffer granian reads a request's head into, and for a request it cannot parse, granian answers
    # itself: the status alone, without a body (docs/operations.md says so).
    huge = {"X-Filler": "x" * HEAD_BUFFER_BYTES * 4}  # checked between reads: a head of twice the buffer may pass
    assert request(production, "GET", "/v1/messages", headers=huge)[0] == 431
    client = socket.create_connection(("127.0.0.1", production), timeout=5)
    client.sendall(b"GET /healthz HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n")
    assert client.recv(1024).startswith(b"HTTP/1.1 400 ")
    client.close()


def test_a_client_still_sending_a_body_too_large_reads_its_413(production):
    # The head first, the body a moment later, as a slow uplink sends it: the 413 must wait for it, or the
    # connection is closed under the client, which sees a broken pipe or a reset instead of the answer.
    size = 2 * 1024 * 1024
    client = socket.create_connection(("127.0.0.1", production), timeout=10)
    client.sendall(f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {size}\r\n\r\n".encode())
    time.sleep(0.5)
    client.sendall(b"{" + b" " * (size - 2) + b"}")
    answer = b"".join(iter(lambda: client.recv(65536), b""))  # to the end: the server closes after the 413
    client.close()

    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"request_too_large"' in answer


def test_a_chunked_body_is_read(production, sender_key):
    client = http.client.HTTPConnection("127.0.0.1", production, timeout=10)
    body = json.dumps(SEED).encode()
    client.request("POST", "/v1/messages", body=iter([body[:10], body[10:]]), encode_chunked=True,
                   headers={"Authorization": f"Bearer {sender_key}", "Content-Type": "application/json",
                            "Transfer-Encoding": "chunked"})
    response = client.getresponse()
    answer = json.loads(response.read())
    client.close()
    assert response.status == 201, answer
    assert (answer["to"], answer["body"]) == (SEED["to"], SEED["body"])


# --- nothing secret in the output ----------------------------------------------------------------------
@pytest.mark.parametrize("procfile", PROCFILES)
def test_no_key_or_secret_reaches_the_servers_output(procfile, sender_key, tmp_path):
    """Production with its access log on, and `make run`'s server, which logs every request."""
    log = tmp_path / "web.log"
    with log.open("wb") as output, web_server(procfile, output=output, WEB_ACCESS_LOG="true") as (_server, port):
        basic = "Basic " + b64encode(f"{sender_key}:".encode()).decode()
        json_type = {"Content-Type": "application/json"}
        for authorization in (f"Bearer {sender_key}", basic):
            assert request(port, "GET", "/v1/messages", headers={"Authorization": authorization})[0] == 200
            assert request(port, "POST", "/v1/messages", json.dumps(SEED),
                           {"Authorization": authorization, **json_type})[0] == 201
            status, _, created = request(port, "POST", "/v1/webhook_endpoints",
                                         json.dumps({"url": "http://127.0.0.1:9/hooks"}),
                                         {"Authorization": authorization, **json_type})
            assert status == 201 and json.loads(created)["secret"].startswith("whsec_")
            assert request(port, "GET", "/v1/messages", headers={"Authorization": authorization + "x"})[0] == 401
        assert request(port, "GET", f"/v1/messages?api_key={sender_key}")[0] in (400, 401)
    output = log.read_text()
    assert '"POST /v1/messages HTTP/1.1" 201' in output  # it did log every request
    assert not re.search(r"mk_(test|live)_|whsec_", output), output


# --- processes and sockets ----------------------------------------------------------------------------
def _sockets_held(pid: int) -> set[str]:
    """The process's sockets, as /proc names them (`socket:[inode]`)."""
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed meanwhile
            pass
    return held


def _established_inodes(port: int) -> set[str]:
    """The server's side of every established TCP connection to `port` (/proc/net/tcp, state 01)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for fields in (row.split() for row in rows):
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(f"socket:[{fields[9]}]")
    return inodes


def _listening_unix_inodes(path: str) -> set[str]:
    """The listening unix sockets bound at `path` (/proc/net/unix: flag 00010000 is listening)."""
    with open("/proc/net/unix") as rows:
        next(rows)
        return {f"socket:[{fields[6]}]" for fields in (row.split() for row in rows)
                if len(fields) > 7 and fields[7] == path and fields[3] == "00010000"}


def test_kept_alive_connections_are_spread_over_the_workers():
    clients = []
    with web_server() as (server, port):
        workers = booted_workers(server)
        try:
            # A load balancer's pool: connections opened together, each kept alive after its first answer.
            for _ in range(CONNECTIONS):
                client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                client.connect()
                clients.append(client)
            for client in clients:
                client.request("GET", "/healthz")
                response = client.getresponse()
                response.read()
                assert response.status in (200, 429) and not response.will_close

            established = _established_inodes(port)
            held = {pid: len(_sockets_held(pid) & established) for pid in workers}
            assert sum(held.values()) >= CONNECTIONS
            # By the kernel's hash, each worker's share is binomial around half: fewer than a quarter of them
            # on either worker is a chance of about 1 in 1,500. With one shared socket, 61/3 was usual.
            assert min(held.values()) >= CONNECTIONS // 4, held
        finally:
            for client in clients:
                client.close()


def test_behind_a_unix_socket_every_worker_serves_the_one_socket(tmp_path):
    """A proxy on the same host reaches the server through a unix socket: one socket at the path, which
    every worker serves."""
    path = str(tmp_path / "mittis.sock")
    with web_server("Procfile", "--uds", path) as (server, _port):
        workers = booted_workers(server)
        time.sleep(1)  # a worker binding a socket of its own would have done so by now
        assert os.path.exists(path), f"nothing to connect to at {path}"

        listening = _listening_unix_inodes(path)
        assert len(listening) == 1, f"{len(listening)} sockets listen at {path}"
        for pid in workers:
            assert listening <= _sockets_held(pid), f"worker {pid} does not serve the socket"
