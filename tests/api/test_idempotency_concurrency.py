"""Twenty copies of one request with one key, at the same instant, on twenty connections (PostgreSQL)."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
import threading
import time

from django.db import DatabaseError, connection, transaction
from django.utils import timezone
import pytest
from rest_framework.test import APIClient

from billing.models import Balance, LedgerEntry
from billing.services import balance_top_up
from messaging.models import Message
from mittis.api.idempotency import _lock_and_find
from mittis.api.models import IdempotencyRecord
from tests.conftest import SEED, drain_queued_tasks
from tests.factories import AccountFactory, SenderFactory, api_key_for

pytestmark = pytest.mark.django_db(transaction=True)

COPIES = 20


def test_twenty_simultaneous_duplicates_send_once_and_charge_once():
    account = AccountFactory()
    SenderFactory(account=account, value=SEED["from"])
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    secret = api_key_for(account, livemode=True)
    drain_queued_tasks()
    start = threading.Barrier(COPIES)

    def send(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        try:
            start.wait()
            response = client.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="same-instant")
            return response.status_code, response.json(), response.get("Idempotent-Replayed")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=COPIES) as pool:
        answers = list(pool.map(send, range(COPIES)))

    message = Message.objects.get(account=account)
    created = [body for status, body, replayed in answers if status == 201 and replayed is None]
    replayed = [body for status, body, replayed in answers if status == 201 and replayed == "true"]
    in_use = [body for status, body, _ in answers if status == 409]
    assert len(created) == 1 and created[0]["id"] == message.public_id
    assert all(body == created[0] for body in replayed)
    assert all(body["error"]["code"] == "idempotency_key_in_use" for body in in_use)
    assert len(created) + len(replayed) + len(in_use) == COPIES
    assert LedgerEntry.objects.filter(account=account, type="charge").count() == 1
    assert Balance.objects.get(account=account, livemode=True).amount == Decimal("1") - message.price
    assert message.events.filter(type="message.queued").count() == 1
    assert [task["task"] for task in drain_queued_tasks()] == ["messaging.dispatch"]
    assert IdempotencyRecord.objects.count() == 1


def test_a_request_that_lost_its_client_mid_transaction_does_not_hold_its_key_for_ever(settings):
    """A request's connection gone without a FIN (a partition, a dead host) leaves its backend idle in
    transaction with the key's lock. The database ends it after MITTIS_ABANDONED_REQUEST_SECONDS; a
    client retrying on 409 then gets through, and the message is sent and charged once."""
    settings.MITTIS_ABANDONED_REQUEST_SECONDS = 1
    account = AccountFactory()
    SenderFactory(account=account, value=SEED["from"])
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    secret = api_key_for(account, livemode=True)
    drain_queued_tasks()
    scope = {"account_id": account.pk, "livemode": True, "key": "abandoned"}
    holding, outcome = threading.Event(), []

    def abandoned_request():
        try:
            with transaction.atomic():
                assert _lock_and_find(scope) == (True, None)
                holding.set()
                time.sleep(6)  # its client is gone: nothing more is sent on this connection
                Message.objects.exists()  # the database has ended the session by now
        except DatabaseError as error:  # "terminating connection due to idle-in-transaction timeout"
            outcome.append(type(error).__name__)
        finally:
            connection.close()

    holder = threading.Thread(target=abandoned_request)
    holder.start()
    assert holding.wait(5)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    answers = []
    for _ in range(20):
        response = client.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="abandoned")
        answers.append(response.status_code)
        if response.status_code != 409:
            break
        time.sleep(float(response["Retry-After"]) / 4)
    holder.join()

    assert answers[0] == 409 and answers[-1] == 201, answers
    assert len(answers) < 20  # freed within seconds, not at the end of the retries
    assert outcome, "the abandoned transaction was ended by the database"
    assert Message.objects.filter(account=account).count() == 1
    assert LedgerEntry.objects.filter(account=account, type="charge").count() == 1


def _keyed_client(account_balance="1"):
    account = AccountFactory()
    SenderFactory(account=account, value=SEED["from"])
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal(account_balance))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    client.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="warm-up")  # the key's first use is noted
    drain_queued_tasks()
    return account, client


def test_a_keyed_send_is_one_statement_with_its_key_and_no_transaction_around_it():
    """BEGIN, the key's lock, the writes, the key's record and COMMIT were five round trips, with the
    account's balance row locked across three: the key is held and recorded by the send's own statement."""
    from django.test.utils import CaptureQueriesContext

    account, client = _keyed_client()
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="one-statement")
    assert response.status_code == 201
    statements = [query["sql"] for query in queries.captured_queries
                  if not query["sql"].startswith('SELECT "accounts_apikey"')]
    assert len(statements) == 1 and statements[0].startswith("WITH idempotency_key AS ("), statements
    replay = client.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="one-statement")
    assert replay["Idempotent-Replayed"] == "true" and replay.content == response.content
    assert Message.objects.filter(account=account).count() == 2  # the warm-up's and this one, once
    assert LedgerEntry.objects.filter(account=account, type="charge").count() == 2


def test_a_twin_that_records_the_key_after_the_statement_began_wins_and_nothing_is_sent():
    """The statement's snapshot predates its lock: a twin that stored the key just before (here, a transaction
    holding the record uncommitted, without the lock) is not seen, and the record's unique constraint fails
    the whole statement. The send, its charge and its event are undone, and the key answers as the twin's."""
    account, client = _keyed_client()
    inserted, release = threading.Event(), threading.Event()
    twin_answer = b'{"object":"message","id":"msg_twin"}'

    def twin():
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(
                    account=account, livemode=True, key="twin", fingerprint="f" * 64, method="POST",
                    path="/v1/messages", request_id="req_twin", response_status=201,
                    response_content_type="application/json", response_body=twin_answer, created_at=timezone.now())
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=twin)
    holder.start()
    assert inserted.wait(5)
    threading.Timer(0.5, release.set).start()  # the statement is waiting on the record's unique index by then
    response = client.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="twin")
    holder.join()

    assert response.status_code == 422  # the twin's fingerprint differs: the key is taken, by another request
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Message.objects.filter(account=account).count() == 1  # the warm-up's only
    assert LedgerEntry.objects.filter(account=account, type="charge").count() == 1
    price = Message.objects.get(account=account).price
    assert Balance.objects.get(account=account, livemode=True).amount == Decimal("1") - price
    assert drain_queued_tasks() == []


def test_a_keyed_send_the_balance_does_not_cover_writes_nothing_and_its_402_is_kept():
    """On its own the statement debits last, after writing the message: a balance that does not cover it fails
    the whole statement, and the transactional path answers (and records) the 402."""
    account, client = _keyed_client(account_balance="0.01")  # the warm-up's leaves less than a message
    response = client.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="not-covered")
    assert response.status_code == 402 and response.json()["error"]["code"] == "insufficient_funds"
    assert Message.objects.filter(account=account).count() == 1  # the warm-up's
    assert LedgerEntry.objects.filter(account=account, type="charge").count() == 1
    assert Balance.objects.get(account=account, livemode=True).amount == Decimal("0.01") - Message.objects.get(
        account=account).price
    assert drain_queued_tasks() == []
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    replay = client.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="not-covered")
    assert replay.status_code == 402 and replay["Idempotent-Replayed"] == "true"
    assert Message.objects.filter(account=account).count() == 1
