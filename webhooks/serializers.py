import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mittis import versions
from mittis.api.pagination import ListParamsSerializer
from mittis.api.serializers import StrictCharField, StrictSerializer, TimestampField
from webhooks.models import DeliveryAttempt, Event, WebhookEndpoint

# Every event type the API publishes (the contract's list), and "*" for all of them.
EVENT_TYPES = ["message.scheduled", "message.queued", "message.sent", "message.delivered", "message.failed",
               "message.canceled", "message.inbound"]


class EnabledEventsField(serializers.ListField):
    child = serializers.ChoiceField(choices=EVENT_TYPES + [WebhookEndpoint.ALL_EVENTS])

    def __init__(self, **kwargs):
        super().__init__(min_length=1, max_length=len(EVENT_TYPES) + 1,
                         help_text='Event types to receive, or ["*"] for all.', **kwargs)

    def to_internal_value(self, data):
        events = super().to_internal_value(data)
        return [WebhookEndpoint.ALL_EVENTS] if WebhookEndpoint.ALL_EVENTS in events else sorted(set(events))


# The schema lists the versions there are; the service checks a value against the registry (400 api_version_invalid).
@extend_schema_field({"type": "string", "enum": list(versions.known()), "example": versions.current()})
class ApiVersionField(StrictCharField):
    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, **kwargs)  # "" is no version either: the service's one refusal


class EndpointCreateSerializer(StrictSerializer):
    url = serializers.URLField(max_length=2048, help_text="https:// (http:// only in test mode).")
    description = StrictCharField(required=False, allow_blank=True, max_length=500, default="")
    enabled_events = EnabledEventsField(required=False, default=lambda: [WebhookEndpoint.ALL_EVENTS])
    api_version = ApiVersionField(required=False, help_text="The API version its payloads are rendered in; "
                                                            "your account's version when omitted.")


class EndpointUpdateSerializer(StrictSerializer):
    url = serializers.URLField(required=False, max_length=2048)
    description = StrictCharField(required=False, allow_blank=True, max_length=500)
    enabled_events = EnabledEventsField(required=False)
    status = serializers.ChoiceField(choices=[WebhookEndpoint.ENABLED, WebhookEndpoint.DISABLED], required=False)
    api_version = ApiVersionField(required=False, help_text="The API version its payloads are rendered in from now on.")


class EndpointSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    id = serializers.CharField(source="public_id")
    url = serializers.CharField()
    description = serializers.CharField()
    enabled_events = serializers.ListField(child=serializers.CharField())
    status = serializers.CharField()
    disabled_reason = serializers.SerializerMethodField(help_text="Why the endpoint was disabled, else null.")
    api_version = serializers.CharField(help_text="The API version its payloads are rendered in (`YYYY-MM-DD`).")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    livemode = serializers.BooleanField()

    def get_object(self, endpoint) -> str:
        return "webhook_endpoint"

    def get_disabled_reason(self, endpoint) -> str | None:
        return endpoint.disabled_reason or None


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="`whsec_…`: shown only now. Verify signatures with it.")


class EndpointDeletedSerializer(serializers.Serializer):
    object = serializers.CharField(default="webhook_endpoint")
    id = serializers.CharField()
    deleted = serializers.BooleanField(default=True)


@extend_schema_field({"$ref": "#/components/schemas/Message"})
class MessageDataField(serializers.JSONField):
    pass


class EventSerializer(serializers.Serializer):
    """The stored payload, exactly: `GET /v1/events/{id}` and the webhook body are the same JSON."""

    object = serializers.CharField(default="event")
    id = serializers.CharField()
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    created_at = serializers.DateTimeField()
    livemode = serializers.BooleanField()
    sequence = serializers.IntegerField(help_text="Orders the events of one object: 1, 2, 3...")
    data = MessageDataField(help_text="The object as `GET` returned it when the event happened.")

    def to_representation(self, event: Event):
        return json.loads(event.payload)


class EventListParamsSerializer(ListParamsSerializer):
    type = serializers.ChoiceField(choices=EVENT_TYPES, required=False)
    created_gte = serializers.DateTimeField(required=False)
    created_lt = serializers.DateTimeField(required=False)


class RedeliverSerializer(StrictSerializer):
    endpoint = StrictCharField(required=False, max_length=64,
                               help_text="A webhook endpoint id (`we_…`); omit for every subscribed endpoint.")


class RecoverSerializer(StrictSerializer):
    since = TimestampField(help_text="From (inclusive), ISO 8601.")
    until = TimestampField(required=False, help_text="To (exclusive); now when omitted.")

    def validate(self, attrs):
        if "until" in attrs and attrs["until"] <= attrs["since"]:
            raise serializers.ValidationError({"until": [serializers.ErrorDetail(
                "'until' must be after 'since'.", code="parameter_invalid")]})
        return attrs


class DeliveryAttemptSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    id = serializers.CharField(source="public_id")
    event = serializers.CharField(source="delivery.event.public_id")
    event_type = serializers.CharField(source="delivery.event.type")
    attempt = serializers.IntegerField(source="number", help_text="1 for the first try of this delivery.")
    url = serializers.CharField()
    attempted_at = serializers.DateTimeField()
    succeeded = serializers.BooleanField()
    response_status = serializers.IntegerField(allow_null=True, help_text="Null when no response arrived.")
    response_body = serializers.CharField(help_text="The first 2 KB of the response.")
    latency_ms = serializers.IntegerField()
    error = serializers.SerializerMethodField(help_text="Why no response arrived (timeout, refused...), else null.")
    next_attempt_at = serializers.DateTimeField(allow_null=True, help_text="When the next retry is due, if any.")

    def get_object(self, attempt) -> str:
        return "webhook_delivery"

    def get_error(self, attempt: DeliveryAttempt) -> str | None:
        return attempt.error or None


class CallbackSecretSerializer(serializers.Serializer):
    object = serializers.CharField(default="callback_secret")
    secret = serializers.CharField(help_text="`whsec_…`, signing every `status_callback` request in this mode.")
    livemode = serializers.BooleanField()
