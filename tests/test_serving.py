"""The production server (mittis/gunicorn_conf.py) as a load balancer meets it: many kept-alive connections
opened at once are spread over the worker processes, not queued on whichever worker woke first."""

from contextlib import contextmanager
import http.client
import os
from pathlib import Path
import subprocess
import sys
import time

from django.conf import settings

from mittis.ops.localhost import child_pids, stop_group, wait_for_http
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 40
WORKERS = 2


@contextmanager
def production_server(bind: str):
    """gunicorn with the production configuration and WORKERS workers; yields the workers' pids once all
    have booted (the first may answer before the second has)."""
    env = {**os.environ, "WEB_CONCURRENCY": str(WORKERS), "LOG_LEVEL": "WARNING",
           "MITTIS_RATE_LIMIT_PREFIX": settings.MITTIS_RATE_LIMIT_PREFIX}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "mittis/gunicorn_conf.py", "--bind", bind,
                               "mittis.wsgi"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while len(workers := child_pids(server.pid)) < WORKERS:
            assert time.monotonic() < deadline, f"{len(workers)} of {WORKERS} workers booted"
            time.sleep(0.1)
        yield workers
    finally:
        stop_group(server)


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
    port = free_port()
    clients = []
    with production_server(f"127.0.0.1:{port}") as workers:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
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
            assert sum(held.values()) >= CONNECTIONS  # and wait_for_http's, if it is still open
            # By the kernel's hash, each worker's share is binomial around half: fewer than a quarter of them
            # on either worker is a chance of about 1 in 1,500. With one shared socket, 61/3 was usual.
            assert min(held.values()) >= CONNECTIONS // 4, held
        finally:
            for client in clients:
                client.close()


def test_behind_a_unix_socket_every_worker_serves_the_one_socket(tmp_path):
    """A proxy on the same host reaches gunicorn through a unix socket. reuse_port would have each worker unlink
    the path and bind a socket of its own there, so only the last one booted could be reached."""
    path = str(tmp_path / "mittis.sock")
    with production_server(f"unix:{path}") as workers:
        time.sleep(1)  # a worker binding a socket of its own would have done so by now
        assert os.path.exists(path), f"nothing to connect to at {path}"

        listening = _listening_unix_inodes(path)
        assert len(listening) == 1, f"{len(listening)} sockets listen at {path}"
        for pid in workers:
            assert listening <= _sockets_held(pid), f"worker {pid} does not serve the socket"
