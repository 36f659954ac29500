"""`make run`'s processes: `python -m mittis.ops.run [--check] PORT`.

Runs Procfile.dev with honcho (the web server on 127.0.0.1:PORT, a Celery worker, beat) and, once the server
answers `/healthz` and a worker answers a ping, makes a new test key and prints it with the next steps: the
last thing on screen. The key is printed, never written to a file nor put in any process's environment.
Ctrl-C (or SIGTERM) stops everything and exits 0; a process that dies stops the rest and its exit code is ours.
`--check` only says whether PORT is free: `make run` asks before it starts a server or migrates.
"""

import argparse
from contextlib import contextmanager
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import urllib3

from mittis.ops.localhost import ROOT

PROCFILE = "Procfile.dev"
# The README's curl sends from this sender of the Demo account.
DEMO_ACCOUNT, DEMO_SENDER = "Demo", "+18045550142"
STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
NEXT_STEPS = """
  Mittis is running on {base} (API reference: {base}/docs). Ctrl-C stops it all.

  Your test API key (a new one on every start):

    export MITTIS_API_KEY={key}

  Then send a text:

    curl {base}/v1/messages -H "Authorization: Bearer $MITTIS_API_KEY" \\
      -H "Content-Type: application/json" \\
      -d '{{"from": "{sender}", "to": "+18045550199", "body": "Your technician is 15 minutes out."}}'

"""


def port_in_use(port: int) -> bool:
    """Whether something listens on PORT, on 127.0.0.1 or on every address. SO_REUSEADDR, as servers set it,
    so the last run's connections waiting out TIME_WAIT do not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def check_port(port: int) -> None:
    try:
        busy = port_in_use(port)
    except (OSError, OverflowError) as error:  # a privileged port, or no port at all
        reason = getattr(error, "strerror", None) or str(error)
        raise SystemExit(f"Port {port} cannot be served: {reason.rstrip('.')}.")
    if busy:
        free = next(other for other in range(port + 1, 65536) if not port_in_use(other))
        raise SystemExit(f"Port {port} is in use (another make run?). Stop it, or run make run PORT={free}.")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mittis.ops.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int, help="the web server's port on 127.0.0.1")
    parser.add_argument("--check", action="store_true", help="only check that the port is free")
    args = parser.parse_args(argv)
    check_port(args.port)  # again when serving: migrating took a while
    if args.check:
        return 0
    base = f"http://127.0.0.1:{args.port}"
    # Carriers' callbacks and absolute links name this server, unless the developer set a tunnel's URL.
    env = {**os.environ, "MITTIS_PUBLIC_URL": os.environ.get("MITTIS_PUBLIC_URL") or base}
    stopping = threading.Event()
    with _own_terminal():
        # honcho shares our process group, the terminal's: Ctrl-C reaches it too, and it stops its processes
        # itself. It inherits these ignored: closing the terminal or Ctrl-\ stop it through us instead (below),
        # and Ctrl-Z, which would leave the terminal to a stopped group, does nothing.
        for sig in (signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP):
            signal.signal(sig, signal.SIG_IGN)
        honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start", "-f", PROCFILE, "-p", str(args.port)],
                                  cwd=ROOT, env=env)

        def stop(sig, _frame):
            if not stopping.is_set() and sig != signal.SIGINT:  # honcho has the terminal's SIGINT already
                honcho.terminate()
            stopping.set()

        for sig in STOPPING_SIGNALS:
            signal.signal(sig, stop)
        threading.Thread(target=_announce, args=(base, env, lambda: honcho.poll() is None and not stopping.is_set()),
                         daemon=True).start()
        code = honcho.wait()
    return 0 if stopping.is_set() else code


def _announce(base: str, env: dict, running) -> None:
    """Once the web server and a worker are up, a new test key and the next steps, printed after their
    start-up lines. Nothing if they stop first."""
    if not _wait_until_up(base, running):
        return
    made = subprocess.run([sys.executable, "manage.py", "createapikey", "--account", DEMO_ACCOUNT,
                           "--sender", DEMO_SENDER, "--name", "make run"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if made.returncode:
        print(made.stderr, file=sys.stderr, flush=True)
    elif running():
        key = made.stdout.strip().splitlines()[-1]
        sys.stdout.write(NEXT_STEPS.format(base=base, key=key, sender=DEMO_SENDER))
        sys.stdout.flush()


def _wait_until_up(base: str, running) -> bool:
    """True once `base` answers /healthz and then a worker answers a ping; False if `running()` turns false."""
    from mittis.celery import app  # make run's broker, from the environment mittis.embedded set

    http = urllib3.PoolManager(retries=False, timeout=1)
    while running():
        try:
            if http.request("GET", f"{base}/healthz").status == 200:
                break
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.2)
    while running():
        if app.control.ping(timeout=1, limit=1):
            return True
    return False


@contextmanager
def _own_terminal():
    """Make this process its own process group in the terminal's foreground while it runs, as a shell does
    for a job, so that Ctrl-C reaches us and honcho and nothing above: GNU make re-raises a SIGINT it gets on
    itself once its recipe ends, so `make run` would exit 130 whatever we return. Without a terminal (or
    started in the background), nothing changes."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        yield
        return
    previous = os.tcgetpgrp(tty)
    if previous != os.getpgrp() or previous == os.getpid():  # in the background, or leading the group already
        os.close(tty)
        yield
        return
    # A background group's tcsetpgrp gets SIGTTOU, which stops it unless ignored.
    ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.setpgid(0, 0)
        os.tcsetpgrp(tty, os.getpgrp())
        yield
    finally:
        try:
            os.tcsetpgrp(tty, previous)
        except OSError:  # make is gone: its shell takes the terminal back
            pass
        signal.signal(signal.SIGTTOU, ttou)
        os.close(tty)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
