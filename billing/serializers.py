from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import LedgerEntry
from billing.pricing import format_amount


@extend_schema_field({"type": "string", "format": "decimal", "example": "0.008"})
class MoneyField(serializers.Field):
    """A Decimal as an exact string: money never passes through a float."""

    def to_representation(self, value):
        return format_amount(value)


class PriceSerializer(serializers.Serializer):
    country = serializers.SerializerMethodField(help_text="ISO 3166 alpha-2; null for the default.")
    price = MoneyField(source="unit_price", help_text="Per segment.")
    currency = serializers.CharField()
    effective_from = serializers.DateTimeField()

    def get_country(self, price) -> str | None:
        return price.country or None


class PriceTableSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    unit = serializers.SerializerMethodField()
    default = PriceSerializer(help_text="For every country without its own price.")
    countries = PriceSerializer(many=True, help_text="Countries with their own price, in effect now.")
    upcoming = PriceSerializer(many=True, help_text="Announced changes, with the date they take effect.")

    def get_object(self, table) -> str:
        return "price_table"

    def get_unit(self, table) -> str:
        return "segment"


class BalanceSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    available = MoneyField(source="amount")
    currency = serializers.CharField()
    livemode = serializers.BooleanField()

    def get_object(self, balance) -> str:
        return "balance"


class LedgerEntrySerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    id = serializers.CharField(source="public_id")
    type = serializers.ChoiceField(choices=[t for t, _ in LedgerEntry.TYPES])
    amount = MoneyField(help_text="Positive adds to the balance, negative takes from it.")
    currency = serializers.CharField()
    message = serializers.SerializerMethodField(help_text="The message charged or refunded, else null.")
    reason = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    livemode = serializers.BooleanField()

    def get_object(self, entry) -> str:
        return "ledger_entry"

    def get_message(self, entry) -> str | None:
        return entry.message_id or None

    def get_reason(self, entry) -> str | None:
        return entry.reason or None
