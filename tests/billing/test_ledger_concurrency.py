"""Many sends, failures, refunds and top-ups at once, on PostgreSQL: the ledger still adds up."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
import threading

from django.db import connection
from django.db.models import Count, Sum
import pytest
from rest_framework.test import APIClient

from billing.models import Balance, LedgerEntry
from billing.services import balance_top_up
from messaging.carriers import sandbox
from messaging.models import Message
from messaging.services import message_send
from tests.factories import AccountFactory, SenderFactory, api_key_for

pytestmark = pytest.mark.django_db(transaction=True)

SENDS = 40
TOP_UPS = 6


def test_concurrent_sends_failures_refunds_and_top_ups_keep_the_ledger_equal_to_the_balance():
    accounts = [AccountFactory(), AccountFactory()]
    keys = {}
    for account in accounts:
        SenderFactory(account=account)
        balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("0.1"))  # 12 messages' worth
        keys[account.pk] = api_key_for(account, livemode=True)
    start = threading.Barrier(SENDS + TOP_UPS)

    def send(n):
        account = accounts[n % 2]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys[account.pk]}")
        to = sandbox.FAILS if n % 3 == 0 else "+18045550199"
        try:
            start.wait()
            response = client.post("/v1/messages", {"from": "+18045550142", "to": to, "body": f"n{n}"}, format="json")
            if response.status_code == 201 and to == sandbox.FAILS:
                message_send(message_id=Message.objects.get(public_id=response.json()["id"]).pk)  # fails, refunds
            return response.status_code
        finally:
            connection.close()

    def top_up(n):
        try:
            start.wait()
            balance_top_up(account_id=accounts[n % 2].pk, livemode=True, amount=Decimal("0.008"))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=SENDS + TOP_UPS) as pool:
        # Submit everything before collecting: the barrier needs every thread waiting at once.
        sends = [pool.submit(send, n) for n in range(SENDS)]
        top_ups = [pool.submit(top_up, n) for n in range(TOP_UPS)]
        statuses = [future.result(timeout=60) for future in sends]
        for future in top_ups:
            future.result(timeout=60)

    assert set(statuses) <= {201, 402} and statuses.count(201) > 0
    for account in accounts:
        entries = LedgerEntry.objects.filter(account=account, livemode=True)
        by_type = dict(entries.values_list("type").annotate(n=Count("id")))
        balance = Balance.objects.get(account=account, livemode=True).amount
        messages = Message.objects.filter(account=account)
        assert entries.aggregate(s=Sum("amount"))["s"] == balance >= 0
        assert by_type["charge"] == messages.count()
        assert by_type.get("refund", 0) == messages.filter(status="failed").count()
        assert entries.filter(type="charge").values("message_id").distinct().count() == messages.count()
