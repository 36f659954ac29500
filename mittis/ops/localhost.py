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
    return [*procfile_command("web", procfile), *options]


def worker_command(process: str, *options: str, procfile: str = "Procfile", queue_prefix: str = "") -> list[str]:
    """A Celery worker line of a Procfile (`worker-sends`) as arguments, with `options` after it and
    `queue_prefix` before each queue its `-Q` names: the tests run production's pools on queues of their own."""
    command = procfile_command(process, procfile)
    at = command.index("-Q") + 1
    command[at] = ",".join(queue_prefix + queue for queue in command[at].split(","))
    return [*command, *options]


def procfile_command(process: str, procfile: str = "Procfile") -> list[str]:
    """The line of `process` in a Procfile as arguments, run by this interpreter (`celery` as `python -m celery`)."""
    for line in (ROOT / procfile).read_text().splitlines():
        if line.startswith(f"{process}:"):
            command = shlex.split(line.removeprefix(f"{process}:"))
            command = command[1:] if command[0] == "exec" else command  # honcho's shell becomes the program
            if Path(command[0]).name.startswith("python"):
                command[0] = sys.executable
            elif Path(command[0]).name == "celery":
                command[:1] = [sys.executable, "-m", "celery"]
            return command
    raise LookupError(f"{procfile} has no {process} line")


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
