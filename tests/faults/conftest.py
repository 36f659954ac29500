"""Fault tests share the webhook receiver and worker of tests/webhooks, and start real processes."""

from contextlib import contextmanager
import os
from pathlib import Path
import subprocess
import time

from django.conf import settings
from django.db import connection

from mittis.ops.localhost import stop_group, wait_for_http  # noqa: F401 (for the tests)
from tests.webhooks.conftest import endpoint, fast_retries, receiver, worker  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]


def process_env(**overrides) -> dict:
    """The environment of a Mittis process on this test's database, queues and Redis prefix."""
    db = connection.settings_dict
    return {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "MITTIS_QUEUE_PREFIX": settings.MITTIS_QUEUE_PREFIX,
            "MITTIS_RATE_LIMIT_PREFIX": settings.MITTIS_RATE_LIMIT_PREFIX, "LOG_LEVEL": "WARNING", **overrides}


@contextmanager
def running(args: list[str], env: dict, output=subprocess.DEVNULL):
    """A Mittis process (and its children, e.g. the web server's processes) for the length of the block; its
    stdout and stderr to `output` (a file), or nowhere."""
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        yield process
    finally:
        stop_group(process, timeout=20)


def disconnect_others() -> None:
    """End every other session on the test database (what killed processes may have left), so the
    test's teardown never waits on their locks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def wait_until(condition, timeout: float = 20, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.1)
