"""Twenty copies of one request with one key, at the same instant, on twenty connections (PostgreSQL)."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
import threading
import time

from django.db import DatabaseError, connection, transaction
import pytest
from rest_framework.test import APIClient

from billing.models import Balance, LedgerEntry
from billing.services import balance_top_up
from messaging.models import Message, MessageEvent
from mittis.api.idempotency import _lock_and_find
from mittis.api.models import IdempotencyRecord
from tests.conftest import SEED, drain_queued_tasks
from tests.factories import AccountFactory, SenderFactory, api_key_for

pytestmark = pytest.mark.django_db(transaction=True)

COPIES = 20


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions are proven on PostgreSQL (CI sets DATABASE_URL)")


def test_twenty_simultaneous_duplicates_send_once_and_charge_once(postgres_only):
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
    assert MessageEvent.objects.filter(message=message, type="message.queued").count() == 1
    assert [task["task"] for task in drain_queued_tasks()] == ["messaging.dispatch"]
    assert IdempotencyRecord.objects.count() == 1


def test_a_request_that_lost_its_client_mid_transaction_does_not_hold_its_key_for_ever(postgres_only, settings):
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
