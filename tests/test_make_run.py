"""`make run` as a newcomer sees it in a terminal: on the port PORT names, the key and the next steps last on
screen and nothing after them while idle, the printed curl works, and Ctrl-C stops everything with exit 0; a
busy port stops it before anything starts. The real `make run`, in a pseudo-terminal, with its servers and data
in a folder of its own."""

from contextlib import contextmanager
import json
import os
from pathlib import Path
import pty
import re
import signal
import socket
import subprocess
import threading
import time
from types import SimpleNamespace
from unittest import mock

from celery import Celery
from django.conf import settings
import pytest
import urllib3

from mittis import embedded
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
UP_TIMEOUT = 180  # a fresh database is migrated first, on a loaded 2-core machine
ANSI = re.compile(r"\x1b\[[0-9;]*m")
KEY_LINE = re.compile(r"^ *export MITTIS_API_KEY=(mk_test_\w+)$", re.M)
STEPS_END = re.compile(r"^ *-d '\{.*\}'\n\n", re.M)  # the next steps' last line, the curl's body
SWEEPS = sorted({entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()})
SWEEP_LINE = re.compile(rf"INFO.*(Sending due task|Task ({'|'.join(map(re.escape, SWEEPS))})\[)")


class Terminal:
    """A command in a pseudo-terminal of its own, as a developer's shell runs it: Ctrl-C is the terminal's."""

    def __init__(self, command: list[str], env: dict):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child only becomes the command
            os.chdir(ROOT)
            os.execvpe(command[0], command, env)
        self.returncode = None
        self._output = bytearray()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: everything holding the terminal has ended
                return
            if not chunk:
                return
            self._output += chunk

    @property
    def screen(self) -> str:
        return ANSI.sub("", bytes(self._output).decode(errors="replace")).replace("\r\n", "\n")

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait_for(self, condition, what: str, timeout: float = UP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.screen):
            assert self.poll() is None, f"make run ended before {what}:\n{self.screen[-4000:]}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s:\n{self.screen[-4000:]}"
            time.sleep(0.1)

    def ctrl_c(self) -> None:
        os.write(self.fd, b"\x03")

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.returncode


def terminal_env(folder: Path) -> dict:
    """A developer's shell: no servers named (make run starts its own, under `folder`), no port, no make above."""
    env = {name: value for name, value in os.environ.items()
           if name not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "MITTIS_PUBLIC_URL", "PORT",
                           "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return {**env, "MITTIS_VAR_DIR": str(folder / "var")}


def make_run(port: int, folder: Path) -> list[str]:
    # `make test` has installed .venv: a fresh stamp of our own says so, so make never reinstalls it here.
    (folder / "installed").touch()
    return ["make", "--no-print-directory", "run", f"PORT={port}", f"STAMP={folder / 'installed'}"]


@contextmanager
def stopped_at_the_end(terminal: Terminal, folder: Path):
    """Whatever the tests did, nothing of this make run outlives them."""
    try:
        yield
    finally:
        if terminal.poll() is None:
            terminal.ctrl_c()
            if terminal.wait(60) is None:
                os.killpg(terminal.pid, signal.SIGKILL)
                terminal.wait(10)
        data = folder / "var" / "dev" / "postgres"
        if (data / "postmaster.pid").exists():
            embedded.stop_postgres(data)
        os.close(terminal.fd)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """make run on a free port, once its key is on screen."""
    folder = tmp_path_factory.mktemp("make-run")
    port = free_port()
    terminal = Terminal(make_run(port, folder), terminal_env(folder))
    with stopped_at_the_end(terminal, folder):
        terminal.wait_for(lambda screen: (key := KEY_LINE.search(screen)) and STEPS_END.search(screen, key.end()),
                          "key and next steps")
        at_key = terminal.screen
        with mock.patch.dict(os.environ, {"MITTIS_VAR_DIR": str(folder / "var")}):
            broker = embedded.running_url("redis", "dev")
        yield SimpleNamespace(terminal=terminal, port=port, folder=folder, at_key=at_key, broker=broker,
                              key=KEY_LINE.search(at_key).group(1),
                              pids={name: int(pid) for name, pid in re.findall(r"(\w+)\.1 started \(pid=(\d+)\)", at_key)})


def after_the_key(screen: str) -> str:
    """What make run printed after its next steps."""
    return screen[STEPS_END.search(screen, KEY_LINE.search(screen).end()).end():].strip()


def test_the_key_and_next_steps_are_printed_last_once_the_servers_are_up(run):
    lines = run.at_key.rstrip().splitlines()
    base = f"http://127.0.0.1:{run.port}"

    block = "\n".join(lines[-12:])
    assert f"Mittis is running on {base}" in block and f"{base}/docs" in block
    assert f"export MITTIS_API_KEY={run.key}" in block
    assert f"curl {base}/v1/messages" in block
    assert ":8000" not in block or run.port == 8000
    # The servers' start-up lines are above the key, not below.
    key_at = run.at_key.index("export MITTIS_API_KEY")
    assert run.at_key.index(f"Listening at: {base}") < key_at
    assert re.search(r"celery@\S+ ready\.", run.at_key[:key_at])


def test_mittis_public_url_follows_the_port(run):
    # The web server builds Twilio's callback URLs and absolute links from it; the worker, carriers' requests.
    for name in ("web", "worker"):
        environ = Path(f"/proc/{run.pids[name]}/environ").read_bytes().split(b"\0")
        assert f"MITTIS_PUBLIC_URL=http://127.0.0.1:{run.port}".encode() in environ, name


def test_nothing_is_printed_while_idle_though_the_sweeps_run(run):
    # Beat sends dispatch_scheduled every 5 s: wait for one after the key, as make run's worker counts them.
    # (Celery takes the broker from CELERY_BROKER_URL, the tests' own, before an app's setting.)
    with mock.patch.dict(os.environ, {"CELERY_BROKER_URL": run.broker}):
        inspect = Celery().control.inspect(timeout=1, limit=1)

        def sweeps_run() -> int:
            stats = inspect.stats() or {}
            return sum(worker["total"].get("messaging.dispatch_scheduled", 0) for worker in stats.values())

        before = sweeps_run()
        deadline = time.monotonic() + 30
        while sweeps_run() <= before:
            assert time.monotonic() < deadline, "no sweep ran in 30 s"
            time.sleep(0.5)

    assert after_the_key(run.terminal.screen) == ""


def test_the_printed_curl_sends_a_message_and_its_work_shows(run):
    lines = run.at_key.splitlines()
    start = next(n for n, line in enumerate(lines) if "export MITTIS_API_KEY" in line)
    end = next(n for n, line in enumerate(lines) if line.strip().startswith("-d '"))
    pasted = "\n".join(line.strip() for line in [lines[start], *lines[start + 1:end + 1]] if line.strip()
                       and not line.strip().endswith(":"))
    done = subprocess.run(["bash", "-c", pasted], capture_output=True, text=True, timeout=30)
    message = json.loads(done.stdout)
    assert message["status"] == "queued", done.stdout

    http = urllib3.PoolManager(headers={"Authorization": f"Bearer {run.key}"})
    deadline = time.monotonic() + 60
    while (status := json.loads(http.request(
            "GET", f"http://127.0.0.1:{run.port}/v1/messages/{message['id']}").data)["status"]) != "delivered":
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    # What happened shows: the request, and the worker's send to the sandbox carrier.
    run.terminal.wait_for(lambda screen: f"reference={message['id']} attempt=1 accepted" in screen, "the send's line", 30)
    assert '"POST /v1/messages HTTP/1.1" 201' in after_the_key(run.terminal.screen)


def test_the_sdks_readme_runs_against_it_as_written(run):
    from tests.sdk.test_sdk_package import readme_python

    env = {**os.environ, "MITTIS_API_KEY": run.key, "MITTIS_BASE_URL": f"http://127.0.0.1:{run.port}"}
    ran = subprocess.run([ROOT / ".venv/bin/python", "-c", readme_python()], capture_output=True, text=True,
                         timeout=120, env=env)

    assert ran.returncode == 0, ran.stderr
    assert "3 message.delivered" in ran.stdout and "undelivered unknown_subscriber" in ran.stdout


def test_ctrl_c_stops_everything_with_exit_0_and_no_error(run):
    run.terminal.ctrl_c()

    assert run.terminal.wait(60) == 0, run.terminal.screen[-3000:]
    screen = run.terminal.screen
    ending = screen[screen.rindex("^C"):]
    assert not re.search(r"ERROR|Error|Traceback|\*\*\*", ending), ending
    assert "web.1 stopped (rc=0)" in ending and "worker.1 stopped (rc=0)" in ending
    assert not SWEEP_LINE.search(screen), SWEEP_LINE.search(screen).group(0)
    for name, pid in run.pids.items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} still running"
    assert not (run.folder / "var" / "dev" / "postgres" / "postmaster.pid").exists()


def test_a_busy_port_stops_it_before_anything_starts(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        done = subprocess.run(make_run(port, tmp_path), cwd=ROOT, env=terminal_env(tmp_path), capture_output=True,
                              text=True, timeout=60)

    assert done.returncode != 0
    assert f"Port {port} is in use (another make run?). Stop it, or run make run PORT=" in done.stderr
    assert "mk_test_" not in done.stdout + done.stderr
    assert not (tmp_path / "var").exists()  # no server started, nothing migrated
