"""Helpers for commands and tests that run Mittis's own processes on this machine (bench, load, faults)."""

import os
from pathlib import Path
import shlex
import signal
import socket
import subprocess
import sys
import time

import urllib3


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ROOT = Path(__file__).resolve().parents[2]


def web_command(*options: str, procfile: str = "Procfile") -> list[str]:
    """The `web` line of a Procfile as arguments, with `options` after it (`--bind 127.0.0.1:PORT`, which
    wins over one the line has): bench, load and the tests start the web server exactly as production
    (Procfile) or `make run` (Procfile.dev) does, with this interpreter."""
    for line in (ROOT / procfile).read_text().splitlines():
        if line.startswith("web:"):
            command = shlex.split(line.removeprefix("web:"))
            command = command[1:] if command[0] == "exec" else command  # honcho's shell becomes the program
            if Path(command[0]).name.startswith("python"):
                command[0] = sys.executable
            return [*command, *options]
    raise LookupError(f"{procfile} has no web line")


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
