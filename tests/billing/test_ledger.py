"""Balance and ledger: charged once at acceptance, refunded when no carrier took it, 402 when short."""

from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError
from django.db.models import Sum
from django.utils import timezone
import pytest

from billing.models import Balance, LedgerEntry
from billing.services import balance_adjust, message_refund
from messaging.carriers import sandbox
from messaging.models import Message
from messaging.services import message_send
from tests.factories import AccountFactory, api_key_for
from webhooks.models import Event


def balance(account):
    return Balance.objects.get(account=account, livemode=True).amount


def ledger_sum(account):
    return LedgerEntry.objects.filter(account=account, livemode=True).aggregate(s=Sum("amount"))["s"]


def test_a_live_send_is_charged_its_price_once(live_api, top_up, send, account):
    top_up("1")

    sent = send(client=live_api).json()

    charge = LedgerEntry.objects.get(type="charge")
    assert (charge.message_id, charge.amount) == (sent["id"], Decimal("-0.008"))
    assert balance(account) == Decimal("0.992") == ledger_sum(account)


def test_without_enough_balance_the_send_is_refused_and_nothing_is_queued(
        live_api, top_up, send, account, django_capture_on_commit_callbacks):
    top_up("0.015")
    with django_capture_on_commit_callbacks() as callbacks:
        first = send(client=live_api, body="a" * 161)  # 2 segments: 0.016

    error = first.json()["error"]
    assert (first.status_code, error["type"], error["code"]) == (402, "billing_error", "insufficient_funds")
    assert (Message.objects.count(), Event.objects.count(), len(callbacks)) == (0, 0, 0)
    assert balance(account) == Decimal("0.015")
    assert send(client=live_api).status_code == 201  # one segment still fits


def test_test_mode_is_never_charged(api, send, account):
    assert send().status_code == 201  # no balance at all

    assert LedgerEntry.objects.count() == 0
    assert api.get("/v1/balance").json() == {"object": "balance", "available": "0", "currency": "USD",
                                             "livemode": False}


def test_a_message_failing_before_any_carrier_took_it_is_refunded(live_api, top_up, send, account):
    top_up("1")
    sent = send(client=live_api, to=sandbox.FAILS).json()

    message_send(message_id=Message.objects.get(public_id=sent["id"]).pk)

    entries = list(LedgerEntry.objects.filter(message_id=sent["id"]).values_list("type", "amount"))
    assert entries == [("charge", Decimal("-0.008")), ("refund", Decimal("0.008"))]
    assert balance(account) == Decimal("1") == ledger_sum(account)


def test_a_message_the_carrier_accepted_is_not_refunded_when_undelivered(live_api, top_up, send, account):
    from messaging.carriers.base import DeliveryReport
    from messaging.services import message_apply_delivery_report

    top_up("1")
    sent = send(client=live_api, to=sandbox.UNDELIVERED).json()
    message = Message.objects.get(public_id=sent["id"])
    message_send(message_id=message.pk)
    message.refresh_from_db()
    message_apply_delivery_report(carrier="sandbox", report=DeliveryReport(
        message.carrier_message_id, "undelivered", "UNDELIV", error_code="unknown_subscriber"))

    assert list(LedgerEntry.objects.filter(message_id=sent["id"]).values_list("type", flat=True)) == ["charge"]


def test_the_database_refuses_a_second_charge_for_one_message(live_api, top_up, send, account):
    top_up("1")
    sent = send(client=live_api).json()

    with pytest.raises(IntegrityError):
        LedgerEntry.objects.create(account=account, livemode=True, type="charge", amount=Decimal("-0.008"),
                                   message_id=sent["id"])


def test_a_refund_happens_once(live_api, top_up, send, account):
    top_up("1")
    sent = send(client=live_api).json()

    refunds = [message_refund(account_id=account.pk, livemode=True, message_id=sent["id"], reason="test")
               for _ in range(2)]

    assert refunds[0] is not None and refunds[1] is None
    assert balance(account) == Decimal("1") == ledger_sum(account)


def test_staff_adjustments_need_a_reason_and_are_recorded_with_the_staff_user(account, admin_user):
    with pytest.raises(ValueError):
        balance_adjust(account_id=account.pk, livemode=True, amount=Decimal("5"), reason=" ", staff_user=admin_user)

    entry = balance_adjust(account_id=account.pk, livemode=True, amount=Decimal("-2.5"), reason="goodwill reversal",
                           staff_user=admin_user)

    assert (entry.type, entry.created_by, balance(account)) == ("adjustment", admin_user, Decimal("-2.5"))


def test_balance_and_ledger_read_through_the_api(live_api, top_up, send, account):
    top_up("2")
    sent = [send(client=live_api, body=f"message {n}").json()["id"] for n in range(3)]

    assert live_api.get("/v1/balance").json() == {"object": "balance", "available": "1.976", "currency": "USD",
                                                  "livemode": True}
    page = live_api.get("/v1/ledger?limit=2").json()
    rest = live_api.get(f"/v1/ledger?limit=2&starting_after={page['data'][-1]['id']}").json()
    entries = page["data"] + rest["data"]
    assert [(e["type"], e["amount"], e["message"]) for e in entries] == [
        ("charge", "-0.008", sent[2]), ("charge", "-0.008", sent[1]), ("charge", "-0.008", sent[0]),
        ("top_up", "2", None)]
    assert page["has_more"] and not rest["has_more"]
    assert all(e["object"] == "ledger_entry" and e["id"].startswith("txn_") for e in entries)


def test_another_account_sees_none_of_my_money(live_api, top_up, send, anonymous):
    top_up("2")
    send(client=live_api)
    other = AccountFactory()
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(other, livemode=True)}")

    assert anonymous.get("/v1/ledger").json()["data"] == []
    assert anonymous.get("/v1/balance").json()["available"] == "0"


@pytest.mark.parametrize("group_by, rows", [
    ("status", [{"status": "failed", "messages": 1, "segments": 1, "amount": "0.008"},
                {"status": "queued", "messages": 2, "segments": 3, "amount": "0.088"}]),
    ("country", [{"country": "GB", "messages": 1, "segments": 2, "amount": "0.08"},
                 {"country": "US", "messages": 2, "segments": 2, "amount": "0.016"}]),
])
def test_usage_is_grouped_by_the_database(prices, live_api, top_up, send, group_by, rows):
    top_up("5")
    send(client=live_api)
    send(client=live_api, to="+447400123456", body="a" * 200)
    failed = send(client=live_api, to=sandbox.FAILS).json()
    message_send(message_id=Message.objects.get(public_id=failed["id"]).pk)
    start = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    usage = live_api.get(f"/v1/usage?start={start}&end={end}&group_by={group_by}").json()

    assert (usage["object"], usage["group_by"], usage["livemode"]) == ("usage", group_by, True)
    assert usage["data"] == rows


def test_usage_by_day(live_api, top_up, send):
    top_up("1")
    send(client=live_api)
    send(client=live_api)

    usage = live_api.get("/v1/usage?start=2020-01-01T00:00:00Z&end=2100-01-01T00:00:00Z").json()

    assert usage["data"] == [{"day": timezone.now().date().isoformat(), "messages": 2, "segments": 2,
                              "amount": "0.016"}]


@pytest.mark.parametrize("query, field", [
    ("end=2026-01-02T00:00:00Z", "start"),
    ("start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", "end"),
    ("start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z&group_by=week", "group_by"),
    ("start=soon&end=2026-01-02T00:00:00Z", "start"),
])
def test_bad_usage_parameters_get_400(api, query, field):
    response = api.get(f"/v1/usage?{query}")

    assert (response.status_code, response.json()["error"]["field"]) == (400, field)
