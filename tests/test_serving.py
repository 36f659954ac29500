"""The production server (mittis/gunicorn_conf.py) as a load balancer meets it: many kept-alive connections
opened at once are spread over the worker processes, not queued on whichever worker woke first."""

from collections import Counter
import http.client
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from django.conf import settings

from mittis.api.management.localhost import wait_for_http
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 40
WORKERS = 2


def _established_by_process(pids: list[int], port: int) -> Counter:
    """How many established connections to `port` each process holds, read from /proc (each socket's inode,
    matched to the processes' file descriptors)."""
    inodes = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
                if local_port == port and state == "01":  # ESTABLISHED, on the server's side
                    inodes[f"socket:[{inode}]"] = True
    held = Counter()
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                held[pid] += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
            except FileNotFoundError:  # closed meanwhile
                pass
    return held


def _children(pid: int) -> list[int]:
    return [int(child) for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                   text=True).stdout.split()]


def test_kept_alive_connections_are_spread_over_the_workers():
    port = free_port()
    env = {**os.environ, "WEB_CONCURRENCY": str(WORKERS), "LOG_LEVEL": "WARNING",
           "MITTIS_RATE_LIMIT_PREFIX": settings.MITTIS_RATE_LIMIT_PREFIX}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "mittis/gunicorn_conf.py", "--bind",
                               f"127.0.0.1:{port}", "mittis.wsgi"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    clients = []
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        deadline = time.monotonic() + 30  # the first worker may answer before the second has booted
        while len(workers := _children(server.pid)) < WORKERS:
            assert time.monotonic() < deadline, f"{len(workers)} of {WORKERS} workers booted"
            time.sleep(0.1)
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

        held = _established_by_process(workers, port)
        assert sum(held.values()) >= CONNECTIONS  # and wait_for_http's, if it is still open
        # By the kernel's hash, each worker's share is binomial around half: fewer than a quarter of them on
        # either worker is a chance of about 1 in 1,500. With one shared socket, splits of 61/3 were usual.
        assert min(held[pid] for pid in workers) >= CONNECTIONS // 4, held
    finally:
        for client in clients:
            client.close()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _listening_unix_inodes(path: str) -> set[str]:
    """The inodes of listening unix sockets bound at `path` (/proc/net/unix: flag 00010000 is listening)."""
    with open("/proc/net/unix") as rows:
        next(rows)
        return {fields[6] for fields in (row.split() for row in rows)
                if len(fields) > 7 and fields[7] == path and fields[3] == "00010000"}


def test_behind_a_unix_socket_every_worker_serves_the_one_socket(tmp_path):
    """A proxy on the same host reaches gunicorn through a unix socket. reuse_port would have each worker unlink
    the path and bind a socket of its own there, so only the last one booted could be reached."""
    path = str(tmp_path / "mittis.sock")
    env = {**os.environ, "WEB_CONCURRENCY": str(WORKERS), "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "mittis/gunicorn_conf.py", "--bind",
                               f"unix:{path}", "mittis.wsgi"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while len(workers := _children(server.pid)) < WORKERS:
            assert time.monotonic() < deadline, "gunicorn did not boot its workers"
            time.sleep(0.1)
        time.sleep(1)  # a worker binding a socket of its own would have done so by now
        assert os.path.exists(path), f"nothing to connect to at {path}"

        listening = _listening_unix_inodes(path)
        assert len(listening) == 1, f"{len(listening)} sockets listen at {path}"
        for pid in workers:
            held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            assert f"socket:[{next(iter(listening))}]" in held, f"worker {pid} does not serve the socket"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
