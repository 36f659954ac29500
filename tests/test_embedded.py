"""`python -m mittis.embedded`: the servers `make run` and `make test` start from wheels on a fresh machine."""

import os
from pathlib import Path
import subprocess
import sys

QUERY = ("import os, psycopg, redis; "
         "print(psycopg.connect(os.environ['DATABASE_URL']).execute('SELECT 6 * 7').fetchone()[0], "
         "redis.Redis.from_url(os.environ['CELERY_BROKER_URL']).ping())")


def test_the_servers_start_in_a_private_folder_and_stop_after_the_command(tmp_path):
    # A checkout under `mktemp -d` is mode 700. As root (CI), PostgreSQL runs unprivileged and must still
    # reach its data and binaries there.
    private = tmp_path / "checkout"
    private.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL")}
    env["MITTIS_VAR_DIR"] = str(private / "var")

    done = subprocess.run([sys.executable, "-m", "mittis.embedded", "--name", "t", "--", sys.executable, "-c",
                           QUERY], env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["42", "True"]
    # Stopped when the command ended: no server is left behind in the folder.
    assert not (private / "var" / "t" / "postgres" / "postmaster.pid").exists()


def test_a_command_killed_by_a_signal_exits_as_a_shell_says_it(tmp_path):
    # 128 + SIGTERM, as a shell reports it; `make` showed a negative code as "Error 241".
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL")}
    env["MITTIS_VAR_DIR"] = str(tmp_path / "var")

    done = subprocess.run([sys.executable, "-m", "mittis.embedded", "--name", "t", "--", "sh", "-c", "kill -TERM $$"],
                          env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)

    assert done.returncode == 128 + 15, done.stderr
