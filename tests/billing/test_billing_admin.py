"""Staff move money in the admin: every top-up and adjustment is a ledger entry naming who made it."""

from datetime import timedelta
from decimal import Decimal

from django.contrib.admin.models import LogEntry
from django.utils import timezone
import pytest

from billing.models import Balance, LedgerEntry, Price


def add_entry(client, account, **fields):
    form = {"account": account.pk, "livemode": "on", "type": "top_up", "amount": "25", "reason": "", **fields}
    return client.post("/admin/billing/ledgerentry/add/", form, follow=True)


def test_a_top_up_in_the_admin_is_a_ledger_entry_by_that_staff_user_and_the_customer_sees_it(
        admin_client, admin_user, account, live_api):
    response = add_entry(admin_client, account, amount="25.50", reason="invoice 1042 paid")

    assert response.status_code == 200
    entry = LedgerEntry.objects.get(account=account)
    assert (entry.type, entry.amount, entry.created_by, entry.reason) == (
        "top_up", Decimal("25.50"), admin_user, "invoice 1042 paid")
    assert "Balance is now 25.5 USD" in response.content.decode()
    logged = LogEntry.objects.get()  # the admin's record names the entry the service appended
    assert (logged.object_id, logged.object_repr) == (str(entry.pk), str(entry))
    assert live_api.get("/v1/balance").json()["available"] == "25.5"
    ledger = live_api.get("/v1/ledger").json()["data"]
    assert [(e["id"], e["type"], e["amount"]) for e in ledger] == [(entry.public_id, "top_up", "25.5")]


def test_an_adjustment_can_take_money_back_and_carries_its_reason(admin_client, admin_user, account):
    add_entry(admin_client, account, amount="10")
    add_entry(admin_client, account, type="adjustment", amount="-2.25", reason="duplicate top-up corrected")

    adjustment = LedgerEntry.objects.get(type="adjustment")
    assert (adjustment.amount, adjustment.created_by) == (Decimal("-2.25"), admin_user)
    assert Balance.objects.get(account=account, livemode=True).amount == Decimal("7.75")


@pytest.mark.parametrize("fields, field_at_fault", [
    ({"type": "adjustment", "amount": "5", "reason": "  "}, "reason"),
    ({"type": "top_up", "amount": "-5"}, "amount"),
    ({"type": "adjustment", "amount": "0", "reason": "nothing"}, "amount"),
    ({"type": "charge", "amount": "5"}, "type"),  # charges and refunds come only from messages
])
def test_a_bad_entry_is_shown_again_with_its_error_and_moves_no_money(admin_client, account, fields, field_at_fault):
    response = add_entry(admin_client, account, **fields)

    assert field_at_fault in response.context["adminform"].form.errors
    assert not LedgerEntry.objects.exists()
    assert sum(b.amount for b in Balance.objects.all()) == 0


def test_ledger_entries_cannot_be_edited_or_deleted(admin_client, account):
    add_entry(admin_client, account, amount="10")
    entry = LedgerEntry.objects.get()

    admin_client.post(f"/admin/billing/ledgerentry/{entry.pk}/change/",
                      {"account": account.pk, "livemode": "on", "type": "top_up", "amount": "1000", "reason": "x"})
    admin_client.post(f"/admin/billing/ledgerentry/{entry.pk}/delete/", {"post": "yes"})

    entry.refresh_from_db()
    assert entry.amount == Decimal("10")
    assert Balance.objects.get(account=account, livemode=True).amount == Decimal("10")


def test_a_price_in_effect_cannot_be_rewritten_but_an_announced_one_can(admin_client, prices):
    started = Price.objects.get(country="GB")
    announced = Price.objects.get(country="FR")
    form = {"country": "GB", "unit_price": "9", "currency": "USD",
            "effective_from_0": timezone.now().strftime("%Y-%m-%d"), "effective_from_1": "00:00:00"}

    admin_client.post(f"/admin/billing/price/{started.pk}/change/", form)
    next_month = (timezone.now() + timedelta(days=31)).strftime("%Y-%m-%d")
    admin_client.post(f"/admin/billing/price/{announced.pk}/change/",
                      {**form, "country": "fr", "unit_price": "0.065", "effective_from_0": next_month})

    started.refresh_from_db()
    announced.refresh_from_db()
    assert started.unit_price == Decimal("0.04")
    assert (announced.country, announced.unit_price) == ("FR", Decimal("0.065"))
    admin_client.post(f"/admin/billing/price/{started.pk}/delete/", {"post": "yes"})
    assert Price.objects.filter(pk=started.pk).exists()
