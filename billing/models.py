"""Prices and money. `billing` never imports `messaging`: it gets account ids, message ids and amounts."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from mittis.accounts.models import Account
from mittis.ids import public_id_default

# Six decimal places price a segment to a millionth of a dollar; sums of many stay exact.
MONEY = {"max_digits": 18, "decimal_places": 6}


class Price(models.Model):
    """The flat price of one segment to one country from `effective_from` on.

    Rows are never rewritten once in effect: a price change is a new row, so history stays true.
    `country` is blank for the default that applies to every country without its own row.
    """

    country = models.CharField(max_length=2, blank=True,
                               help_text="ISO 3166 alpha-2 (GB, US, ...); blank for every other country.")
    unit_price = models.DecimalField(**MONEY, help_text="Per segment.")
    currency = models.CharField(max_length=3, default="USD")
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["country", "effective_from"], name="price_unique_start")]
        indexes = [models.Index(fields=["country", "-effective_from"], name="price_lookup_idx")]
        ordering = ["country", "-effective_from"]

    def __str__(self) -> str:
        return f"{self.country or 'default'} {self.unit_price} {self.currency} from {self.effective_from:%Y-%m-%d}"


class Balance(models.Model):
    """An account's prepaid balance in one mode: the running sum of its ledger, kept beside it.

    Changed only together with a ledger entry, in one transaction, so the two always agree.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="balances",
                                db_index=False)  # balance_unique_per_mode leads with it
    livemode = models.BooleanField()
    amount = models.DecimalField(**MONEY, default=0)
    currency = models.CharField(max_length=3, default="USD")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "livemode"], name="balance_unique_per_mode")]

    def __str__(self) -> str:
        return f"{self.account} {'live' if self.livemode else 'test'}: {self.amount} {self.currency}"


class LedgerEntry(models.Model):
    """One movement of money. Append-only: entries are never changed or deleted."""

    TOP_UP = "top_up"
    CHARGE = "charge"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    TYPES = [(TOP_UP, "Top-up"), (CHARGE, "Charge"), (REFUND, "Refund"), (ADJUSTMENT, "Adjustment")]

    public_id = models.CharField(max_length=40, default=public_id_default("txn"), editable=False)  # unique: Meta (mittis/ids.py)
    # No index of its own: ledger_list_idx leads with it.
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="ledger_entries", db_index=False)
    livemode = models.BooleanField()
    type = models.CharField(max_length=16, choices=TYPES)
    amount = models.DecimalField(**MONEY, help_text="Positive adds to the balance, negative takes from it.")
    currency = models.CharField(max_length=3, default="USD")
    message_id = models.CharField(max_length=40, blank=True, help_text="The message charged or refunded (msg_…).")
    reason = models.CharField(max_length=500, blank=True)
    # Indexed by ledger_created_by_idx: only entries a person made (a user's deletion looks for them), not the
    # charge and refund of every message.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   db_index=False, help_text="The staff member, for top-ups and adjustments.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["public_id"], name="ledger_public_id_unique"),
            # The database, not our code, makes a second charge (or refund) for one message impossible.
            models.UniqueConstraint(fields=["message_id", "type"], condition=Q(type__in=["charge", "refund"]),
                                    name="ledger_one_charge_one_refund_per_message"),
        ]
        indexes = [models.Index(fields=["account", "livemode", "-id"], name="ledger_list_idx"),
                   models.Index(fields=["created_by"], name="ledger_created_by_idx", condition=Q(created_by__isnull=False))]
        verbose_name_plural = "ledger entries"

    def __str__(self) -> str:
        return f"{self.public_id} {self.type} {self.amount} {self.currency}"
