"""Reads scale out on a real streaming replica: the module starts one, made with pg_basebackup from the test
server, and adds it as the `replica` database. Lists, exports and usage read it; a retrieve right after a create,
idempotency and money read the primary; a replica that lags, is cut off or does not answer is skipped, and its
lag is shown to staff."""

from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
import re
import shutil
import subprocess
import tempfile
import time

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone
import pytest

from messaging.models import Export, Message
from mittis import embedded, replica
from mittis.replica import REPLICA, ReplicaRouter, replica_reads, replica_state
from tests.conftest import SEED
from tests.factories import AccountFactory, SenderFactory, api_key_for

pytestmark = pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, REPLICA])


@pytest.mark.django_db(transaction=True)  # before the module's replica exists: first in the module
def test_without_a_replica_every_read_is_the_primarys():
    assert REPLICA not in connections.settings
    with replica_reads():
        assert ReplicaRouter().db_for_read(Message) is None
    assert replica_state() == replica.ReplicaState(configured=False, lag=None, usable=False, reason="no replica")


def _server_bin(major: int) -> Path:
    """The server programs of the primary's major version: the embedded wheel's, or the machine's."""
    wheel = Path(embedded._postgres_bin("postgres")).parent
    version = subprocess.run([wheel / "postgres", "--version"], capture_output=True, text=True).stdout
    if f" {major}." in version:
        return wheel
    machine = Path(f"/usr/lib/postgresql/{major}/bin")
    if (machine / "postgres").exists():
        return machine
    pytest.skip(f"no PostgreSQL {major} server programs here to run a replica of the test server")


@pytest.fixture(scope="module")
def streaming_replica(django_db_setup, django_db_blocker):
    """A hot standby streaming from the test server, as the database alias `replica`; yields its data folder."""
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version_num")
            major = int(cursor.fetchone()[0]) // 10000
    primary = connection.settings_dict
    programs = _server_bin(major)
    # A folder of its own, not pytest's: another pytest session on the machine prunes pytest's older folders,
    # and took this one, with the replica's data in it, from under the running server.
    folder = Path(tempfile.mkdtemp(prefix="mittis-replica-"))
    data, log = folder / "data", folder / "server.log"
    drop = embedded._as_server_user()
    embedded._let_server_user_through(folder, programs)
    if drop:
        shutil.chown(folder, user=drop["user"], group=drop["group"])
    # -R: the copy starts as a standby of the server it was taken from; -X stream: with the WAL made meanwhile.
    copied = subprocess.run([programs / "pg_basebackup", "-h", primary["HOST"], "-p", str(primary["PORT"]), "-U",
                             primary["USER"], "-D", data, "-X", "stream", "-R", "-c", "fast"], cwd="/",
                            capture_output=True, text=True, **drop)
    assert copied.returncode == 0, f"pg_basebackup of the test server failed: {copied.stderr}"
    port = embedded._free_port()
    # A standby needs at least the primary's max_connections (the embedded server's is 200).
    options = f"-p {port} -h 127.0.0.1 -c unix_socket_directories='' -c hot_standby=on -c max_connections=400"
    subprocess.run([programs / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start"], check=True,
                   cwd="/", stdout=subprocess.DEVNULL, start_new_session=True, **drop)
    connections.settings[REPLICA] = {**primary, "HOST": "127.0.0.1", "PORT": port,
                                     "TEST": {**primary.get("TEST", {}), "MIRROR": DEFAULT_DB_ALIAS}}
    try:
        with django_db_blocker.unblock():
            deadline = time.monotonic() + 30
            while _on_replica("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")[0] != 1:
                assert time.monotonic() < deadline, "the replica did not start streaming"
                time.sleep(0.1)
        yield data
    finally:
        connections[REPLICA].close()
        del connections.settings[REPLICA]
        del connections[REPLICA]
        subprocess.run([programs / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], cwd="/",
                       stdout=subprocess.DEVNULL, **drop)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def on_replica(streaming_replica, settings):
    """The replica in use, as fresh as the primary, read anew for each test."""
    settings.MITTIS_REPLICA_MAX_LAG = 60
    _replay(resume=True)
    _caught_up()
    deadline = time.monotonic() + 20  # a walreceiver restarting (as it may on a busy machine) is skipped: wait
    while not (state := replica_state(fresh=True)).usable:
        assert time.monotonic() < deadline, f"the replica is not usable: {state}"
        time.sleep(0.1)
    yield streaming_replica
    _replay(resume=True)
    replica.replica_forget()


def _on_replica(sql: str, params=()):
    with connections[REPLICA].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _replay(*, resume: bool) -> None:
    _on_replica("SELECT pg_wal_replay_resume()" if resume else "SELECT pg_wal_replay_pause()")


def _caught_up() -> None:
    """Until the replica has replayed everything the primary has committed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        position = cursor.fetchone()[0]
    deadline = time.monotonic() + 20
    while not _on_replica("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [position])[0]:
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.05)


@contextmanager
def replay_paused():
    _caught_up()
    _replay(resume=False)
    try:
        yield
    finally:
        _replay(resume=True)


@pytest.fixture
def account_api(transactional_db):
    from rest_framework.test import APIClient

    account = AccountFactory(rate_limit=10_000)
    SenderFactory(account=account, value=SEED["from"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account)}")
    return account, client


def test_the_replica_streams_the_test_database(on_replica):
    assert _on_replica("SELECT pg_is_in_recovery()")[0] is True
    assert _on_replica("SELECT current_database()")[0] == connection.settings_dict["NAME"]
    state = replica_state()
    assert state.configured and state.usable and 0 <= state.lag < 5  # caught up but for what the primary does now


def test_lists_read_the_replica_and_a_retrieve_right_after_a_create_reads_the_primary(on_replica, account_api):
    account, api = account_api
    before = api.post("/v1/messages", SEED, format="json").json()
    _caught_up()

    with replay_paused():
        created = api.post("/v1/messages", SEED, format="json")
        listed = [m["id"] for m in api.get("/v1/messages").json()["data"]]
        retrieved = api.get(f"/v1/messages/{created.json()['id']}")
        usage = api.get("/v1/usage", {"start": (timezone.now() - timedelta(days=1)).isoformat(),
                                      "end": (timezone.now() + timedelta(days=1)).isoformat(), "group_by": "status"})
        # A cursor made a moment ago is found (on the primary); the page is the replica's.
        newer = api.get("/v1/messages", {"starting_after": created.json()["id"]}).json()["data"]

    assert created.status_code == 201 and retrieved.status_code == 200  # the primary's
    assert listed == [before["id"]]  # the replica's: it has not seen the new message
    assert sum(row["messages"] for row in usage.json()["data"]) == 1
    assert [m["id"] for m in newer] == [before["id"]]
    _caught_up()
    assert [m["id"] for m in api.get("/v1/messages").json()["data"]] == [created.json()["id"], before["id"]]


def test_idempotency_and_money_read_the_primary(on_replica, account_api):
    account, api = account_api
    with replay_paused():
        first = api.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
        again = api.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
        balance = api.get("/v1/balance").json()
        ledger = api.get("/v1/ledger").json()["data"]

    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Message.objects.filter(account=account).count() == 1
    assert balance["object"] == "balance" and isinstance(ledger, list)


def test_a_lagging_replica_is_skipped_and_its_lag_shown(on_replica, account_api, settings, admin_client):
    account, api = account_api
    settings.MITTIS_REPLICA_MAX_LAG = 0.5
    with replay_paused():
        created = api.post("/v1/messages", SEED, format="json").json()
        deadline = time.monotonic() + 10
        while (state := replica_state(fresh=True)).usable:
            assert time.monotonic() < deadline, f"the paused replica never lagged: {state}"
            time.sleep(0.2)
        listed = [m["id"] for m in api.get("/v1/messages").json()["data"]]
        page = admin_client.get("/admin/").content.decode()

    assert listed == [created["id"]]  # from the primary: the replica is behind
    assert state.lag > 0.5 and "more than 0.5 s behind" in state.reason
    assert "Read replica" in page and "skipped, more than 0.5 s behind" in page


def test_the_lag_is_shown_while_the_replica_serves(on_replica, admin_client):
    page = admin_client.get("/admin/").content.decode()

    assert "Read replica" in page and re.search(r"\d+\.\d s behind, serving lists and exports", page)


def test_an_export_reads_the_replica_once_it_has_replayed_the_claim(on_replica, account_api, monkeypatch):
    from messaging.exports import export_create, export_run

    account, api = account_api
    api.post("/v1/messages", SEED, format="json")
    export = export_create(account=account, livemode=False, type=Export.MESSAGES, format=Export.NDJSON,
                           start=timezone.now() - timedelta(days=1), end=timezone.now() + timedelta(days=1),
                           filters={}, csv_safe=False)
    reads = []
    real = ReplicaRouter.db_for_read
    monkeypatch.setattr(ReplicaRouter, "db_for_read",
                        lambda self, model, **hints: reads.append(real(self, model, **hints)) or reads[-1])
    done = export_run(export_id=export.pk)

    assert done.status == Export.SUCCEEDED and done.row_count == 1
    assert REPLICA in reads


def test_an_export_reads_the_primary_when_the_replica_cannot_catch_up(on_replica, account_api, monkeypatch):
    from messaging.exports import export_create, export_run

    monkeypatch.setattr(replica, "REPLAY_WAIT_SECONDS", 0.3)
    account, api = account_api
    with replay_paused():
        api.post("/v1/messages", SEED, format="json")  # after the pause: the replica never has it
        export = export_create(account=account, livemode=False, type=Export.MESSAGES, format=Export.NDJSON,
                               start=timezone.now() - timedelta(days=1), end=timezone.now() + timedelta(days=1),
                               filters={}, csv_safe=False)
        done = export_run(export_id=export.pk)

    assert done.status == Export.SUCCEEDED and done.row_count == 1  # the primary's rows


def test_a_replica_that_does_not_answer_is_skipped(on_replica, account_api, settings):
    account, api = account_api
    api.post("/v1/messages", SEED, format="json")
    real = connections.settings[REPLICA]
    connections[REPLICA].close()
    connections.settings[REPLICA] = {**real, "PORT": embedded._free_port()}  # nothing listens there
    del connections[REPLICA]
    replica.replica_forget()
    try:
        listed = api.get("/v1/messages").json()["data"]
        state = replica_state()
    finally:
        connections.settings[REPLICA] = real
        del connections[REPLICA]
        replica.replica_forget()

    assert len(listed) == 1 and not state.usable and state.reason == "not answering"


def test_reads_outside_replica_reads_and_every_write_use_the_primary(on_replica):
    router = ReplicaRouter()

    assert router.db_for_read(Message) is None
    with replica_reads():
        assert router.db_for_read(Message) == REPLICA
        assert router.db_for_write(Message) == DEFAULT_DB_ALIAS
    assert router.allow_migrate(REPLICA, "messaging") is False

