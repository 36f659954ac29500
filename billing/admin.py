from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from billing.models import Balance, LedgerEntry, Price
from billing.pricing import format_amount
from billing.services import balance_adjust, balance_top_up


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """A price change is a new row with a future `effective_from`; a price in effect is never edited."""

    list_display = ["display_country", "unit_price", "currency", "effective_from", "in_effect"]
    list_filter = ["currency"]
    search_fields = ["=country"]
    ordering = ["country", "-effective_from"]

    @admin.display(description="country", ordering="country")
    def display_country(self, price):
        return price.country or "default (every other country)"

    @admin.display(boolean=True, description="started")
    def in_effect(self, price):
        return price.effective_from <= timezone.now()

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.effective_from <= timezone.now():
            return ["country", "unit_price", "currency", "effective_from"]  # history stays true
        return []

    def has_delete_permission(self, request, obj=None):
        in_effect = obj is not None and obj.effective_from <= timezone.now()
        return not in_effect and super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        obj.country = obj.country.upper()
        super().save_model(request, obj, form, change)


@admin.register(Balance)
class BalanceAdmin(admin.ModelAdmin):
    list_display = ["account", "livemode", "display_amount", "updated_at"]
    list_filter = ["livemode"]
    list_select_related = ["account"]
    search_fields = ["=account__public_id", "account__name"]
    readonly_fields = ["account", "livemode", "amount", "currency", "updated_at"]

    @admin.display(description="amount", ordering="amount")
    def display_amount(self, balance):
        return f"{format_amount(balance.amount)} {balance.currency}"

    def has_add_permission(self, request):
        return False  # balances move only with ledger entries

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class LedgerEntryForm(forms.ModelForm):
    type = forms.ChoiceField(choices=[(LedgerEntry.TOP_UP, "Top-up"), (LedgerEntry.ADJUSTMENT, "Adjustment")])

    class Meta:
        model = LedgerEntry
        fields = ["account", "livemode", "type", "amount", "reason"]

    def clean(self):
        data = super().clean()
        amount, entry_type = data.get("amount"), data.get("type")
        if amount is not None and entry_type == LedgerEntry.TOP_UP and amount <= 0:
            self.add_error("amount", "A top-up adds money: enter a positive amount.")
        if amount == 0:
            self.add_error("amount", "An entry of zero changes nothing.")
        if entry_type == LedgerEntry.ADJUSTMENT and not (data.get("reason") or "").strip():
            self.add_error("reason", "Say why: an adjustment always carries its reason.")
        return data


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """Append-only: staff add top-ups and adjustments; nothing is edited or deleted."""

    form = LedgerEntryForm
    list_display = ["public_id", "account", "livemode", "type", "display_amount", "message_id", "reason",
                    "created_by", "created_at"]
    list_filter = ["type", "livemode"]
    list_select_related = ["account", "created_by"]
    search_fields = ["=public_id", "=message_id", "=account__public_id", "account__name"]
    autocomplete_fields = ["account"]
    show_full_result_count = False

    @admin.display(description="amount", ordering="amount")
    def display_amount(self, entry):
        return f"{format_amount(entry.amount)} {entry.currency}"

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [field.name for field in LedgerEntry._meta.fields]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["account", "livemode", "type", "amount", "reason"]
        return ["public_id", "account", "livemode", "type", "amount", "currency", "message_id", "reason",
                "created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            return  # entries are immutable; the form is read-only anyway
        data = form.cleaned_data
        common = {"account_id": data["account"].pk, "livemode": data["livemode"], "amount": data["amount"],
                  "reason": data["reason"], "staff_user": request.user}
        entry = (balance_top_up(**common) if data["type"] == LedgerEntry.TOP_UP else balance_adjust(**common))
        obj.pk = entry.pk  # the admin goes on with the row the service appended (log entry, redirect)
        obj.refresh_from_db()
        messages.info(request, f"Balance is now {format_amount(Balance.objects.get(account_id=entry.account_id, livemode=entry.livemode).amount)} {entry.currency}.")

    def has_change_permission(self, request, obj=None):
        return False  # viewing the list and the entries needs the view permission

    def has_delete_permission(self, request, obj=None):
        return False
