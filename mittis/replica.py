"""Reads that may trail the writes by a moment go to a streaming replica, when one is configured and keeps up.

With `DATABASE_REPLICA_URL` set, the database alias `replica` exists and `ReplicaRouter` sends a read there only
inside `replica_reads()`: lists, exports, usage and the staff dashboard ask for it. Everything else reads the
primary, and so does everything that must see its own writes: a retrieve right after a create, idempotency,
money (balances, charges, the ledger), and claims (conditional updates and row locks). A replica further behind
than `MITTIS_REPLICA_MAX_LAG` seconds, not streaming, or not answering is skipped: the read goes to the primary.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connections

logger = logging.getLogger(__name__)

REPLICA = "replica"
# How often a process asks the replica how far behind it is: a read costs no extra round trip in between.
CHECK_SECONDS = 1.0
# The replica's own view of its lag: none while it has replayed all it received; else the age of the last
# transaction it replayed. NULL (unknown) when it is not streaming from a primary: a replica cut off from the
# primary has replayed all it received and would read as caught up.
LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0
    WHEN NOT EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN NULL
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
    ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())
END
"""

_reading: ContextVar[bool] = ContextVar("mittis_replica_reads", default=False)


@contextmanager
def replica_reads(*, after: str | None = None):
    """Reads in this block may be served by the replica (a list, an export, a report), never writes. `after`: a
    primary WAL position (`primary_position()`, taken after a commit) that the replica must have replayed for
    this block to read it, so that the block sees that commit; else it reads the primary."""
    token = _reading.set(after is None or _replayed(after))
    try:
        yield
    finally:
        _reading.reset(token)


def primary_position() -> str | None:
    """The primary's WAL position now: what a replica must replay to see every commit made so far. The insert
    position, not the write position: with `synchronous_commit` off a commit may not be written out yet."""
    if not replica_configured():
        return None
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        return cursor.fetchone()[0]


REPLAY_WAIT_SECONDS = 2.0  # how long `replica_reads(after=...)` waits for the replica to catch up before the primary


def _replayed(position: str | None) -> bool:
    if position is None or not replica_configured() or not replica_state().usable:
        return False
    deadline = time.monotonic() + REPLAY_WAIT_SECONDS
    while True:
        try:
            with connections[REPLICA].cursor() as cursor:
                cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [position])
                if cursor.fetchone()[0]:
                    return True
        except DatabaseError:
            connections[REPLICA].close()
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@dataclass(frozen=True)
class ReplicaState:
    configured: bool
    lag: float | None  # seconds behind the primary; None when unknown (not streaming, or not answering)
    usable: bool
    reason: str  # why it is skipped, for staff; "" when it is used


class _Check:
    """The last look at the replica, shared by the process's threads, renewed every CHECK_SECONDS."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at = float("-inf")
        self.state = ReplicaState(configured=False, lag=None, usable=False, reason="no replica")

    def forget(self) -> None:
        with self.lock:
            self.at = float("-inf")


_check = _Check()


def replica_configured() -> bool:
    return REPLICA in connections.settings


def replica_state(*, fresh: bool = False) -> ReplicaState:
    """Whether the replica is used, and its lag, as of at most CHECK_SECONDS ago (`fresh`: now)."""
    if not replica_configured():
        return ReplicaState(configured=False, lag=None, usable=False, reason="no replica")
    with _check.lock:
        if fresh or time.monotonic() - _check.at >= CHECK_SECONDS:
            _check.state, _check.at = _look(), time.monotonic()
        return _check.state


def replica_forget() -> None:
    """Look at the replica again on the next read (after its configuration changed)."""
    _check.forget()


def _look() -> ReplicaState:
    try:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute(LAG_SQL)
            lag = cursor.fetchone()[0]
    except DatabaseError as exc:
        logger.warning("The replica does not answer (%s): reads go to the primary", type(exc).__name__)
        connections[REPLICA].close()
        return ReplicaState(configured=True, lag=None, usable=False, reason="not answering")
    if lag is None:
        return ReplicaState(configured=True, lag=None, usable=False, reason="not streaming from the primary")
    lag = float(lag)
    if lag > settings.MITTIS_REPLICA_MAX_LAG:
        return ReplicaState(configured=True, lag=lag, usable=False,
                            reason=f"more than {settings.MITTIS_REPLICA_MAX_LAG:g} s behind")
    return ReplicaState(configured=True, lag=lag, usable=True, reason="")


class ReplicaRouter:
    """Django's database router (settings.DATABASE_ROUTERS). Writes, migrations and every read outside
    `replica_reads()` use the primary (`default`)."""

    def db_for_read(self, model, **hints):
        if _reading.get() and replica_configured() and replica_state().usable:
            return REPLICA
        return None

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True  # one database, two copies of it

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"
