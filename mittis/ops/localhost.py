"""Helpers for commands and tests that run Mittis's own processes on this machine (bench, load, faults)."""

import os
import signal
import socket
import subprocess
import time

import urllib3


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30, error: type[Exception] = TimeoutError) -> None:
    """Return once `url` answers at all; raise `error` if it does not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib3.request("GET", url, timeout=1, retries=False)
            return
        except urllib3.exceptions.HTTPError:
            if time.monotonic() > deadline:
                raise error(f"{url} did not come up within {timeout:g} s")
            time.sleep(0.2)


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started directly (gunicorn's workers of its master)."""
    return [int(child) for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                   text=True).stdout.split()]


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a process started with `start_new_session=True` and everything it started (gunicorn's
    workers, Celery's pool): SIGTERM, then SIGKILL for what is left after `timeout`."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
