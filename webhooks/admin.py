from datetime import timedelta
import json

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from mittis.accounts.admin import RecordAdmin
from webhooks.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from webhooks.services import deliveries_sweep, endpoint_recover_request, endpoint_update, event_redeliver


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class AttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fk_name = "delivery"
    fields = ["number", "attempted_at", "succeeded", "response_status", "latency_ms", "error", "next_attempt_at"]
    readonly_fields = fields
    ordering = ["number"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Staff can disable or re-enable an endpoint; secrets are never shown (they are encrypted)."""

    list_display = ["public_id", "account", "livemode", "url", "status", "failing_since", "created_at"]
    list_filter = ["status", "livemode"]
    list_select_related = ["account"]
    search_fields = ["=public_id", "=account__public_id", "url"]
    fields = ["public_id", "account", "livemode", "url", "description", "enabled_events", "api_version", "status",
              "disabled_reason", "failing_since", "previous_secret_expires_at", "created_at", "updated_at"]
    # The customer chooses an endpoint's version (its receiver's code follows it): staff read it.
    readonly_fields = ["public_id", "account", "livemode", "url", "enabled_events", "api_version", "failing_since",
                       "previous_secret_expires_at", "created_at", "updated_at"]

    actions = ["recover_last_day", "disable_endpoints", "enable_endpoints"]

    @admin.action(description="Recover: re-send the failed events of the last 24 hours", permissions=["recover"])
    def recover_last_day(self, request, queryset):
        until = timezone.now()
        since = until - timedelta(hours=24)
        for endpoint in queryset:
            endpoint_recover_request(endpoint_id=endpoint.pk, since=since, until=until)
            self.log_change(request, endpoint, f"Recovery of failed events since {since:%Y-%m-%d %H:%M} UTC started.")
        messages.info(request, f"Recovery started for {queryset.count()} endpoint(s).")

    def has_recover_permission(self, request):
        return request.user.has_perm("webhooks.recover_endpoint")

    @admin.action(description="Disable the selected endpoints", permissions=["change"])
    def disable_endpoints(self, request, queryset):
        for endpoint in queryset.filter(status=WebhookEndpoint.ENABLED):
            endpoint_update(endpoint=endpoint, status=WebhookEndpoint.DISABLED)
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(disabled_reason=f"Disabled by staff ({request.user}).")
            self.log_change(request, endpoint, "Disabled from the staff console.")

    @admin.action(description="Enable the selected endpoints", permissions=["change"])
    def enable_endpoints(self, request, queryset):
        for endpoint in queryset.exclude(status=WebhookEndpoint.ENABLED):
            endpoint_update(endpoint=endpoint, status=WebhookEndpoint.ENABLED)
            self.log_change(request, endpoint, "Enabled from the staff console.")

    def has_add_permission(self, request):
        return False  # created through the API, which shows the customer its secret

    def has_delete_permission(self, request, obj=None):
        return False  # the customer deletes theirs through the API; staff disable one

    def save_model(self, request, obj, form, change):
        if "status" in form.changed_data and obj.status == WebhookEndpoint.ENABLED:
            obj.failing_since, obj.disabled_reason = None, ""
        elif "status" in form.changed_data:
            obj.disabled_reason = obj.disabled_reason or f"Disabled by staff ({request.user})."
        super().save_model(request, obj, form, change)


class DeliveryInline(ReadOnlyInline):
    model = Delivery
    fields = ["endpoint", "callback_url", "status", "attempts", "next_attempt_at"]
    readonly_fields = fields


@admin.register(Event)
class EventAdmin(RecordAdmin):
    list_display = ["public_id", "type", "object_id", "sequence", "account", "livemode", "created_at"]
    list_filter = ["type", "livemode"]
    list_select_related = ["account"]
    search_fields = ["=public_id", "=object_id", "=account__public_id"]
    show_full_result_count = False
    date_hierarchy = "created_at"
    fields = ["public_id", "type", "object_id", "sequence", "account", "livemode", "created_at", "pretty_payload"]
    readonly_fields = fields
    inlines = [DeliveryInline]
    actions = ["redeliver"]

    @admin.action(description="Redeliver the selected events to their endpoints", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        count = 0
        for event in queryset:
            deliveries = event_redeliver(event=event)
            self.log_change(request, event, f"Redelivered to {len(deliveries)} endpoint(s) from the staff console.")
            count += len(deliveries)
        messages.info(request, f"{count} deliveries queued.")

    def has_redeliver_permission(self, request):
        return request.user.has_perm("webhooks.redeliver_event")

    @admin.display(description="payload")
    def pretty_payload(self, event):
        return format_html("<pre>{}</pre>", json.dumps(json.loads(event.payload), indent=2, ensure_ascii=False))


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "endpoint", "callback_url", "status", "attempts", "next_attempt_at", "updated_at"]
    list_filter = ["status"]
    list_select_related = ["event", "endpoint"]
    search_fields = ["=event__public_id", "=endpoint__public_id"]
    show_full_result_count = False
    fields = ["event", "endpoint", "callback_url", "status", "attempts", "next_attempt_at", "locked_until",
              "created_at", "updated_at"]
    readonly_fields = fields
    inlines = [AttemptInline]
    actions = ["retry_now"]

    @admin.action(description="Retry the selected pending deliveries now", permissions=["redeliver"])
    def retry_now(self, request, queryset):
        count = queryset.filter(status=Delivery.PENDING).update(next_attempt_at=timezone.now(), locked_until=None)
        deliveries_sweep(overdue_by=timedelta(0))
        messages.info(request, f"{count} deliveries queued for an attempt now.")

    def has_redeliver_permission(self, request):
        return request.user.has_perm("webhooks.redeliver_event")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(RecordAdmin):
    list_display = ["public_id", "endpoint", "url", "number", "attempted_at", "succeeded", "response_status",
                    "latency_ms", "error"]
    list_filter = ["succeeded"]
    list_select_related = ["endpoint"]
    search_fields = ["=public_id", "=endpoint__public_id", "=delivery__event__public_id"]
    show_full_result_count = False
