from django.contrib import admin

from billing.pricing import format_amount
from messaging.models import Message, MessageEvent, Sender


@admin.register(Sender)
class SenderAdmin(admin.ModelAdmin):
    list_display = ["value", "kind", "account", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["account"]
    search_fields = ["=value", "=account__public_id", "account__name"]
    autocomplete_fields = ["account"]
    readonly_fields = ["kind", "created_at"]

    def save_model(self, request, obj, form, change):
        obj.kind = Sender.PHONE_NUMBER if obj.value.startswith("+") else Sender.ALPHANUMERIC
        super().save_model(request, obj, form, change)


class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    fields = ["sequence", "type", "status", "carrier_status", "created_at", "public_id"]
    readonly_fields = fields
    ordering = ["sequence"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Read-only: staff look here to answer "what happened to my message?"."""

    list_display = ["public_id", "account", "livemode", "status", "direction", "from_number", "to", "segments",
                    "display_price", "created_at"]
    list_filter = ["status", "livemode", "direction", "carrier"]
    list_select_related = ["account"]
    # Exact matches only: each hits an index, so search stays fast on a large table.
    search_fields = ["=public_id", "=to", "=from_number", "=account__public_id", "=carrier_message_id"]
    search_help_text = "A message id (msg_…), a phone number (+1804…), an account id or a carrier message id."
    show_full_result_count = False
    date_hierarchy = "created_at"
    inlines = [MessageEventInline]
    fieldsets = [
        (None, {"fields": ["public_id", "account", "livemode", "status", "direction", "from_number", "to", "body"]}),
        ("Pricing", {"fields": ["encoding", "segments", "price", "currency"]}),
        ("Carrier", {"fields": ["carrier", "carrier_message_id", "send_attempts", "error_code", "error_message"]}),
        ("Times", {"fields": ["created_at", "updated_at", "sent_at", "delivered_at"]}),
        ("Metadata", {"fields": ["metadata"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Message._meta.fields]

    @admin.display(description="price", ordering="price")
    def display_price(self, message):
        return f"{format_amount(message.price)} {message.currency}"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
