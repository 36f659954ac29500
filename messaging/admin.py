import json

from django import forms
from django.contrib import admin, messages

from billing.pricing import format_amount
from messaging import statuses
from messaging.exports import export_create
from messaging.models import (
    Carrier, CarrierInbound, CarrierReport, Export, Message, OptOut, Route, RouteCarrier, Sender, SmppBind,
)
from mittis.accounts.admin import RecordAdmin
from mittis.errors import DomainError


@admin.register(Sender)
class SenderAdmin(admin.ModelAdmin):
    list_display = ["value", "kind", "number_type", "mps", "account", "created_at"]
    list_filter = ["kind", "number_type"]
    list_select_related = ["account"]
    search_fields = ["=value", "=account__public_id", "account__name"]
    autocomplete_fields = ["account"]
    readonly_fields = ["kind", "created_at"]

    def save_model(self, request, obj, form, change):
        obj.kind = Sender.PHONE_NUMBER if obj.value.startswith("+") else Sender.ALPHANUMERIC
        super().save_model(request, obj, form, change)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Staff look here to answer "what happened to my message?": everything about it on one page."""

    list_display = ["public_id", "account", "livemode", "status", "direction", "from_number", "to", "carrier",
                    "segments", "display_price", "created_at"]
    list_filter = ["status", "livemode", "direction", "carrier"]
    list_select_related = ["account"]
    # Exact matches only: each hits an index, so search stays fast on a large table.
    search_fields = ["=public_id", "=to", "=from_number", "=account__public_id", "=carrier_message_id"]
    search_help_text = "A message id (msg_…), a phone number (+1804…), an account id or a carrier message id."
    show_full_result_count = False
    date_hierarchy = "created_at"
    actions = ["cancel_scheduled"]
    fieldsets = [
        (None, {"fields": ["public_id", "account", "livemode", "status", "direction", "from_number", "to", "body"]}),
        ("Timeline", {"fields": ["timeline"]}),
        ("Pricing", {"fields": ["encoding", "segments", "price", "currency"]}),
        ("Carrier", {"fields": ["carrier", "carrier_message_id", "send_attempts", "error_code", "error_message"]}),
        ("Times", {"fields": ["created_at", "updated_at", "send_at", "expires_at", *statuses.TIME_FIELDS,
                              "redacted_at"]}),
        ("Metadata", {"fields": ["metadata", "status_callback"]}),
    ]

    @admin.display(description="everything that happened, in order")
    def timeline(self, message):
        from messaging.admin_timeline import render_timeline

        return render_timeline(message, request=self._request)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._request = request  # the timeline shows redeliver buttons only to those allowed them
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        from django.urls import path

        return [path("<path:object_id>/redeliver/<str:event_id>/", self.admin_site.admin_view(self.redeliver_view),
                     name="messaging_message_redeliver")] + super().get_urls()

    def redeliver_view(self, request, object_id, event_id):
        """Send one of the message's events again to its endpoints now, and show how it went."""
        from django.http import HttpResponseNotAllowed
        from django.shortcuts import get_object_or_404, redirect
        from django.core.exceptions import PermissionDenied

        from webhooks.models import Event
        from webhooks.services import delivery_attempt, event_redeliver

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("webhooks.redeliver_event"):
            raise PermissionDenied
        message = get_object_or_404(Message, pk=object_id)
        event = get_object_or_404(Event, public_id=event_id, object_id=message.public_id)
        deliveries = event_redeliver(event=event)
        results = [delivery_attempt(delivery_id=d.pk) for d in deliveries]
        summary = ", ".join(f"{d.endpoint.public_id}: {r.response_status or r.error}" if r else
                            f"{d.endpoint.public_id}: queued" for d, r in zip(deliveries, results))
        self.log_change(request, message, f"Redelivered {event.public_id} ({event.type}) to {summary or 'no endpoint'}.")
        self.message_user(request, f"Redelivered {event.type}: {summary or 'no enabled endpoint subscribes to it'}.",
                          messages.SUCCESS if deliveries else messages.WARNING)
        return redirect("admin:messaging_message_change", message.pk)

    @admin.action(description="Cancel the selected scheduled messages (refunded)", permissions=["cancel"])
    def cancel_scheduled(self, request, queryset):
        from messaging.services import message_cancel

        canceled = 0
        for message in queryset:
            try:
                message_cancel(message=message)
            except DomainError as refused:
                self.message_user(request, f"{message.public_id}: {refused}", messages.ERROR)
                continue
            self.log_change(request, message, "Canceled (scheduled message) from the staff console.")
            canceled += 1
        if canceled:
            self.message_user(request, f"Canceled {canceled} scheduled message(s).", messages.SUCCESS)

    def has_cancel_permission(self, request):
        return request.user.has_perm("messaging.cancel_message")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Message._meta.fields] + ["timeline"]

    @admin.display(description="price", ordering="price")
    def display_price(self, message):
        return f"{format_amount(message.price)} {message.currency}"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a message changes only through its lifecycle (and the actions above)

    def has_delete_permission(self, request, obj=None):
        return False


class CarrierForm(forms.ModelForm):
    """Credentials are write-only: typed in, encrypted, never shown again (blank keeps the current ones)."""

    new_credentials = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        label="Credentials (JSON)",
        help_text='SMPP: {"password": "…"}; Twilio: {"auth_token": "…"}, and if a Webhook Rule signs its callbacks '
                  'with a SharedKey, "webhook_shared_keys": {"<SharedKey id>": "<secret>"}. Stored encrypted; leave '
                  'blank to keep.')

    class Meta:
        model = Carrier
        fields = ["name", "kind", "enabled", "settings", "tps"]

    def clean_new_credentials(self):
        value = self.cleaned_data["new_credentials"].strip()
        if not value:
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            raise forms.ValidationError("Enter a JSON object, such as {\"password\": \"…\"}.")
        if not isinstance(parsed, dict):
            raise forms.ValidationError("Enter a JSON object.")
        return parsed

    def save(self, commit=True):
        carrier = super().save(commit=False)
        if self.cleaned_data.get("new_credentials") is not None:
            carrier.credentials = self.cleaned_data["new_credentials"]
        if commit:
            carrier.save()
        return carrier


@admin.register(Carrier)
class CarrierAdmin(admin.ModelAdmin):
    form = CarrierForm
    list_display = ["name", "kind", "enabled", "tps", "breaker_state", "breaker_failures", "has_credentials",
                    "bind_state"]
    list_filter = ["kind", "enabled", "breaker_state"]
    readonly_fields = ["breaker_state", "breaker_failures", "breaker_opened_at", "created_at", "updated_at"]
    actions = ["close_breaker", "disable_carriers", "enable_carriers"]

    @admin.action(description="Take out of rotation (disable)", permissions=["change"])
    def disable_carriers(self, request, queryset):
        for carrier in queryset.filter(enabled=True):
            Carrier.objects.filter(pk=carrier.pk).update(enabled=False)
            self.log_change(request, carrier, "Disabled from the staff console.")

    @admin.action(description="Put back in rotation (enable)", permissions=["change"])
    def enable_carriers(self, request, queryset):
        for carrier in queryset.filter(enabled=False):
            Carrier.objects.filter(pk=carrier.pk).update(enabled=True)
            self.log_change(request, carrier, "Enabled from the staff console.")

    @admin.display(boolean=True, description="credentials")
    def has_credentials(self, carrier):
        return bool(carrier.credentials_encrypted)

    @admin.display(description="SMPP bind")
    def bind_state(self, carrier):
        bind = SmppBind.objects.filter(carrier=carrier).first()
        return f"{bind.state} {bind.last_error}".strip() if bind else "—"

    @admin.action(description="Close the breaker (put back in rotation now)", permissions=["change"])
    def close_breaker(self, request, queryset):
        for carrier in queryset:
            Carrier.objects.filter(pk=carrier.pk).update(breaker_state=Carrier.CLOSED, breaker_failures=0,
                                                         breaker_opened_at=None)
            self.log_change(request, carrier, "Breaker closed from the staff console.")


class RouteCarrierInline(admin.TabularInline):
    model = RouteCarrier
    extra = 1
    fields = ["carrier", "position", "weight"]


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ["__str__", "prefix", "country", "livemode", "carrier_order"]
    list_filter = ["livemode"]
    inlines = [RouteCarrierInline]

    @admin.display(description="carriers, in order")
    def carrier_order(self, route):
        return ", ".join(f"{e.position}. {e.carrier.name} (w{e.weight})" for e in route.entries.select_related("carrier"))


@admin.register(CarrierReport)
class CarrierReportAdmin(RecordAdmin):
    list_display = ["carrier", "carrier_message_id", "status", "message", "received_at"]
    list_filter = ["carrier", "status"]
    search_fields = ["=carrier_message_id", "=message__public_id"]
    show_full_result_count = False


class RoutedFilter(admin.SimpleListFilter):
    title = "routed to an account"
    parameter_name = "routed"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No: to a number no active account has")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(message__isnull=self.value() == "no")
        return queryset


@admin.register(CarrierInbound)
class CarrierInboundAdmin(RecordAdmin):
    """Where staff find an inbound message that reached no account (routed: No), and any one as it came."""

    list_display = ["received_at", "carrier", "from_number", "to", "body", "message"]
    list_select_related = ["message"]
    list_filter = [RoutedFilter, "carrier"]
    search_fields = ["=from_number", "=to", "=message__public_id"]
    show_full_result_count = False


@admin.register(OptOut)
class OptOutAdmin(admin.ModelAdmin):
    list_display = ["phone_number", "account", "livemode", "sender", "keyword", "created_at"]
    list_filter = ["livemode", "keyword"]
    list_select_related = ["account"]
    search_fields = ["=phone_number", "=account__public_id"]
    readonly_fields = ["public_id", "account", "livemode", "phone_number", "sender", "keyword", "created_at"]

    def has_add_permission(self, request):
        return False  # only the phone's own STOP opts it out; deleting one opts it back in

    def has_change_permission(self, request, obj=None):
        return False


class ExportForm(forms.ModelForm):
    class Meta:
        model = Export
        fields = ["account", "livemode", "type", "format", "start", "end"]


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    """Staff start an export for an account here and follow its progress; the customer downloads it
    through the API like any of their exports."""

    form = ExportForm
    list_display = ["public_id", "account", "livemode", "type", "format", "status", "progress", "row_count",
                    "created_by", "created_at", "expires_at"]
    list_filter = ["status", "type", "livemode"]
    list_select_related = ["account"]
    search_fields = ["=public_id", "=account__public_id"]
    autocomplete_fields = ["account"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["account", "livemode", "type", "format", "start", "end"]
        return ["public_id", "account", "livemode", "type", "format", "start", "end", "filters", "status",
                "progress", "row_count", "file_size", "error", "created_by", "created_at", "completed_at",
                "expires_at", "file_deleted_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        export = export_create(account=data["account"], livemode=data["livemode"], type=data["type"],
                               format=data["format"], start=data["start"], end=data["end"], filters={},
                               created_by=request.user.get_username())
        obj.pk, obj.public_id = export.pk, export.public_id

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a deleted row would leave its file behind: files go when they expire, the row stays
