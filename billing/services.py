"""Writes for money: charges, refunds, top-ups and adjustments, each a ledger entry.

The balance row changes only in the transaction (or statement) that appends its ledger entry, so the sum
of the ledger always equals the balance. Charges and refunds for one message are unique in the database.
"""

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F

from billing.models import Balance, LedgerEntry
from mittis.db import Statement, insert_select, quoted_table
from mittis.errors import DomainError


def message_charge_parts(statement: Statement, *, account_id: int, livemode: bool, message_id: str,
                         amount: Decimal, currency: str, guard: str) -> str | None:
    """Charge a message's price, as parts of the statement that accepts it (`mittis.db`): the debit, made
    only when `guard` (an SQL condition) holds and the balance covers it, and its ledger entry. Returns the
    debit's name, a part with one row if the charge was made and none otherwise; None when there is nothing
    to debit: test mode, which is never charged, and a free message, whose entry of 0 depends on `guard`
    alone (its account may have no balance row yet)."""
    if not livemode:
        return None
    if amount == 0:
        statement.add("charge", *insert_select(LedgerEntry(
            account_id=account_id, livemode=livemode, type=LedgerEntry.CHARGE, amount=amount, currency=currency,
            message_id=message_id), where=guard))
        return None
    table = quoted_table(Balance)
    debit = statement.add(
        "debit", f"UPDATE {table} SET amount = amount - %s WHERE account_id = %s AND livemode AND amount >= %s "
                 f"AND {guard} RETURNING id", [amount, account_id, amount])
    entry = LedgerEntry(account_id=account_id, livemode=livemode, type=LedgerEntry.CHARGE, amount=-amount,
                        currency=currency, message_id=message_id)
    statement.add("charge", *insert_select(entry, source=debit))
    return debit


def insufficient_funds(*, amount: Decimal, currency: str) -> DomainError:
    return DomainError("insufficient_funds",
                       f"Your balance does not cover this message ({amount.normalize():f} {currency}). Top up to send.")


def message_refund(*, account_id: int, livemode: bool, message_id: str, reason: str) -> LedgerEntry | None:
    """Give back what a message was charged, once. Nothing to refund (test mode, free) is not an error.

    Call inside the transaction that records why (the failure), so refund and reason commit together.
    """
    charge = LedgerEntry.objects.filter(message_id=message_id, type=LedgerEntry.CHARGE, account_id=account_id,
                                        livemode=livemode).first()
    if charge is None:
        return None
    try:
        with transaction.atomic():  # a savepoint: a duplicate refund fails alone
            refund = LedgerEntry.objects.create(
                account_id=account_id, livemode=livemode, type=LedgerEntry.REFUND, amount=-charge.amount,
                currency=charge.currency, message_id=message_id, reason=reason)
    except IntegrityError:
        return None  # already refunded
    Balance.objects.filter(account_id=account_id, livemode=livemode).update(amount=F("amount") + refund.amount)
    return refund


def balance_top_up(*, account_id: int, livemode: bool, amount: Decimal, currency: str = "USD",
                   reason: str = "", staff_user=None) -> LedgerEntry:
    if amount <= 0:
        raise ValueError("A top-up adds money: the amount must be positive.")
    return _append(account_id=account_id, livemode=livemode, type=LedgerEntry.TOP_UP, amount=amount,
                   currency=currency, reason=reason, staff_user=staff_user)


def balance_adjust(*, account_id: int, livemode: bool, amount: Decimal, reason: str, staff_user,
                   currency: str = "USD") -> LedgerEntry:
    """A correction by staff, either way; always with a reason and the staff member."""
    if not reason.strip():
        raise ValueError("An adjustment needs a reason.")
    if amount == 0:
        raise ValueError("An adjustment of zero changes nothing.")
    return _append(account_id=account_id, livemode=livemode, type=LedgerEntry.ADJUSTMENT, amount=amount,
                   currency=currency, reason=reason, staff_user=staff_user)


def _append(*, account_id, livemode, type, amount, currency, reason, staff_user) -> LedgerEntry:
    with transaction.atomic():
        _balance_for_update(account_id=account_id, livemode=livemode)
        Balance.objects.filter(account_id=account_id, livemode=livemode).update(amount=F("amount") + amount)
        return LedgerEntry.objects.create(account_id=account_id, livemode=livemode, type=type, amount=amount,
                                          currency=currency, reason=reason, created_by=staff_user)


def _balance_for_update(*, account_id: int, livemode: bool) -> Balance:
    balance, _ = Balance.objects.select_for_update().get_or_create(account_id=account_id, livemode=livemode)
    return balance
