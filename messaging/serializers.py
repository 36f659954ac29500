from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.serializers import MoneyField
from messaging import statuses
from messaging.carriers import sandbox
from messaging.errors import MESSAGE_ERRORS
from messaging.models import Message, SendAttempt
from messaging.representation import message_row  # also for services, which build events with it
from mittis.api.pagination import ListParamsSerializer
from mittis.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer, TimestampField
from mittis.numbers import valid_e164
from webhooks.serializers import EVENT_TYPES

MAX_BODY_LENGTH = 1600
METADATA_MAX_KEYS = 20
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500
# Alphanumeric sender ids: GSM allows 11 characters; at least one letter tells them from short codes.
ALPHANUMERIC_SENDER_MAX = 11

E164_EXAMPLE = "+18045550199"


def e164_shaped(value: str) -> bool:
    """`+` and 7-15 digits: E.164's form, whether or not such a number exists."""
    return value.startswith("+") and value[1:].isascii() and value[1:].isdigit() and 8 <= len(value) <= 16


def parse_e164(value: str) -> str | None:
    """The number if `value` is a valid E.164 number (`+` and digits only), else None."""
    return valid_e164(value) if e164_shaped(value) else None


def phone_number(field: str, value: str, *, or_else: str = "") -> str:
    """`value` as a valid E.164 number, else `invalid_phone_number` saying which it is not: in E.164 format, or
    (in that format) a number that exists, such as +10000000000, which no numbering plan has."""
    number = parse_e164(value)
    if number is not None:
        return number
    if e164_shaped(value):
        message = f"'{field}' ({value}) is not a valid phone number: it is in E.164 format, but no such number exists."
    else:
        message = f"'{field}' must be a phone number in E.164 format, like {E164_EXAMPLE}{or_else}."
    raise serializers.ValidationError(message, code="invalid_phone_number")


def is_alphanumeric_sender(value: str) -> bool:
    return (
        1 <= len(value) <= ALPHANUMERIC_SENDER_MAX
        and value.isascii()
        and all(c.isalnum() or c == " " for c in value)
        and any(c.isalpha() for c in value)
    )


class PhoneNumberField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 32)
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        return self.to_internal_value(data) if data == "" else super().run_validation(data)

    def to_internal_value(self, data):
        return phone_number(self.field_name, super().to_internal_value(data))


class SenderField(StrictCharField):
    """One of the account's senders: `from` of a send, `to` of a test inbound message."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value.startswith("+"):
            return phone_number(self.field_name, value, or_else=", or an alphanumeric sender id")
        if not is_alphanumeric_sender(value):
            raise serializers.ValidationError(
                f"'{self.field_name}' must be an E.164 phone number or a sender id of 1-11 letters, digits and spaces "
                "with at least one letter.", code="parameter_invalid")
        return value


class BodyField(StrictCharField):
    def __init__(self, **kwargs):
        # Whitespace is content in a text message; the length check is ours, in characters.
        super().__init__(trim_whitespace=False, **kwargs)

    def run_validation(self, data=serializers.empty):
        # DRF answers "" before to_internal_value with a generic code; ours is body_empty.
        return self.to_internal_value(data) if data == "" else super().run_validation(data)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value:
            raise serializers.ValidationError("'body' must have at least one character.", code="body_empty")
        if len(value) > MAX_BODY_LENGTH:
            raise serializers.ValidationError(
                f"'body' has {len(value):,} characters; the most is {MAX_BODY_LENGTH:,}.", code="body_too_long")
        return value


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string", "maxLength": 500},
                      "maxProperties": 20, "example": {"order_id": "A-1001"}})
class MetadataField(serializers.Field):

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("'metadata' must be an object of string keys and values.",
                                              code="parameter_invalid_type")
        if len(data) > METADATA_MAX_KEYS:
            raise serializers.ValidationError(
                f"'metadata' has {len(data)} keys; the most is {METADATA_MAX_KEYS}.", code="metadata_invalid")
        errors = {}
        for key, value in data.items():
            problem = _metadata_problem(key, value)
            if problem:
                errors[key] = [serializers.ErrorDetail(problem, code="metadata_invalid")]
        if errors:
            raise serializers.ValidationError(errors)
        return data

    def to_representation(self, value):
        return value


def _metadata_problem(key: str, value) -> str | None:
    if not 1 <= len(key) <= METADATA_MAX_KEY_LENGTH:
        return f"Metadata keys must have 1-{METADATA_MAX_KEY_LENGTH} characters."
    if not isinstance(value, str):
        return f"Metadata values must be strings (key '{key}')."
    if len(value) > METADATA_MAX_VALUE_LENGTH:
        return f"Metadata values may have at most {METADATA_MAX_VALUE_LENGTH} characters (key '{key}')."
    if "\x00" in key or "\x00" in value:
        return "Metadata may not contain NUL characters."
    return None


class MessageCreateSerializer(StrictSerializer):
    from_ = SenderField(help_text="A phone number (E.164) or alphanumeric sender id registered to your account.")
    to = PhoneNumberField(help_text="The recipient, in E.164 format.")
    body = BodyField(help_text="The text, 1-1,600 characters. GSM-7 or UCS-2 is chosen for you.")
    metadata = MetadataField(required=False, default=dict,
                             help_text="Up to 20 string keys (1-40 characters) and values (up to 500 characters).")
    send_at = TimestampField(
        required=False, default=None,
        help_text="Send later: an ISO 8601 time 60 s to 35 days ahead. The message is `scheduled` (and charged) "
                  "until then, and can be canceled.")
    validity_period = StrictIntegerField(
        required=False, default=None, min_value=1, max_value=36000,
        help_text="Seconds (1-36,000; 4 hours by default) the message may wait for a carrier, from `send_at` or "
                  "now. Past it the message is `expired` and refunded rather than sent late.")
    status_callback = serializers.URLField(
        required=False, max_length=2048, default=None,
        help_text="A URL that gets this message's events, signed with your callback secret "
                  "(`GET /v1/callback_secret`), besides your webhook endpoints.")

    def validate_send_at(self, value):
        if value is None:
            return value
        now = timezone.now()
        earliest = now + timedelta(seconds=settings.MITTIS_SCHEDULE_MIN_SECONDS)
        latest = now + timedelta(days=settings.MITTIS_SCHEDULE_MAX_DAYS)
        if not earliest <= value <= latest:
            raise serializers.ValidationError(
                f"'send_at' must be between {settings.MITTIS_SCHEDULE_MIN_SECONDS} seconds and "
                f"{settings.MITTIS_SCHEDULE_MAX_DAYS} days from now.", code="parameter_out_of_range")
        return value

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # `from` is a Python keyword
        return fields


class SendAttemptSerializer(serializers.Serializer):
    carrier = serializers.CharField()
    attempted_at = serializers.DateTimeField()
    latency_ms = serializers.IntegerField()
    outcome = serializers.ChoiceField(choices=[o for o, _ in SendAttempt.OUTCOMES],
                                      help_text="accepted, temporary_error (the next carrier was tried), rejected, "
                                                "or unknown (no answer: not tried elsewhere, to never send twice).")
    carrier_message_id = serializers.CharField(read_only=True, allow_null=True)
    raw_code = serializers.CharField(read_only=True, allow_null=True, help_text="What the carrier said, verbatim.")
    error_code = serializers.CharField(read_only=True, allow_null=True, help_text="Our code for it.")


class MessageSerializer(serializers.Serializer):
    """The message object. Also the `data` of every event, so the two never drift apart."""

    # Declares the object for the schema; `messaging.representation` builds it, for every use.

    object = serializers.CharField(read_only=True)
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=statuses.ALL)
    direction = serializers.ChoiceField(choices=[Message.OUTBOUND, Message.INBOUND])
    from_ = serializers.CharField()
    to = serializers.CharField()
    body = serializers.CharField(read_only=True, allow_null=True,
                                 help_text="The text; null once redacted (see `redacted_at`).")
    encoding = serializers.ChoiceField(choices=["GSM-7", "UCS-2"])
    segments = serializers.IntegerField()
    price = MoneyField(help_text="Decimal string: segments x the flat price per segment of the destination.")
    currency = serializers.CharField()
    metadata = serializers.DictField(child=serializers.CharField())
    status_callback = serializers.CharField(read_only=True, allow_null=True,
                                            help_text="The URL that gets this message's events, or null.")
    error_code = serializers.CharField(allow_null=True, help_text="Why the message failed; null unless it did.")
    error_message = serializers.CharField(allow_null=True)
    retryable = serializers.BooleanField(
        read_only=True, allow_null=True,
        help_text="For a failed message: whether sending it again later may succeed (see the error catalogue).")
    attempts = SendAttemptSerializer(many=True, help_text="Every try of a carrier, in order: 1, 2, 3...")
    send_at = serializers.DateTimeField(allow_null=True, help_text="When a scheduled message is sent.")
    expires_at = serializers.DateTimeField(allow_null=True, help_text="Not handed to a carrier after this.")
    redacted_at = serializers.DateTimeField(allow_null=True, help_text="When the body was redacted, else null.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    livemode = serializers.BooleanField()
    # One per status with a time (statuses.TIMED), in its order; a message sent, then delivered, has both.
    sent_at = serializers.DateTimeField(allow_null=True, help_text="When a carrier accepted the message, else null.")
    delivered_at = serializers.DateTimeField(allow_null=True,
                                             help_text="When the carrier reported it delivered, else null.")
    undelivered_at = serializers.DateTimeField(
        allow_null=True, help_text="When the carrier reported it undelivered (or no report came in time), else null.")
    failed_at = serializers.DateTimeField(allow_null=True, help_text="When it failed, else null.")
    canceled_at = serializers.DateTimeField(allow_null=True, help_text="When it was canceled, else null.")
    expired_at = serializers.DateTimeField(
        allow_null=True, help_text="When it expired (not handed to a carrier within its validity period), else null.")

    def get_fields(self):
        # `from` is a Python keyword; renamed in place, so the documented order stays the declared one.
        return {"from" if name == "from_" else name: field for name, field in super().get_fields().items()}

    def to_representation(self, message: Message) -> dict:
        return message_row(message)


class MessageListParamsSerializer(ListParamsSerializer):
    status = serializers.ChoiceField(choices=statuses.ALL, required=False)
    to = StrictCharField(required=False, max_length=32)
    from_ = StrictCharField(required=False, max_length=32)
    direction = serializers.ChoiceField(choices=[Message.OUTBOUND, Message.INBOUND], required=False)
    created_gte = TimestampField(required=False, help_text="Created at or after (ISO 8601).")
    created_lt = TimestampField(required=False, help_text="Created before (ISO 8601).")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields



class MessagePreviewSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    encoding = serializers.ChoiceField(choices=["GSM-7", "UCS-2"])
    segments = serializers.IntegerField()
    price = MoneyField(help_text="What the send will cost: segments x unit_price.")
    unit_price = MoneyField(help_text="The price per segment to this country.")
    currency = serializers.CharField()
    country = serializers.SerializerMethodField(help_text="ISO 3166 alpha-2 of `to`; null for non-geographic numbers.")
    non_gsm_characters = serializers.ListField(
        child=serializers.CharField(),
        help_text="The characters that forced UCS-2, in order of appearance; empty for GSM-7. Replace them "
                  "(a curly quote with a straight one, say) to fit more text in each segment.")

    def get_object(self, quote) -> str:
        return "message_preview"

    def get_country(self, quote) -> str | None:
        return quote.country or None


class UsageParamsSerializer(StrictSerializer):
    start = TimestampField(help_text="From (inclusive), ISO 8601.")
    end = TimestampField(help_text="To (exclusive), ISO 8601.")
    group_by = serializers.ChoiceField(choices=["day", "country", "status"], default="day")

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": [serializers.ErrorDetail("'end' must be after 'start'.",
                                                                               code="parameter_invalid")]})
        return attrs


class UsageRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The day (YYYY-MM-DD), country or status of this row.")
    messages = serializers.IntegerField()
    segments = serializers.IntegerField()
    amount = MoneyField(help_text="The price of these messages (refunds are in the ledger).")


class OptOutSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    id = serializers.CharField(source="public_id")
    phone_number = serializers.CharField(help_text="The number that opted out; sends to it answer 422.")
    sender = serializers.CharField(help_text="Your sender it replied to.")
    keyword = serializers.CharField(help_text="What it replied: STOP, UNSUBSCRIBE...; `CARRIER` when a carrier "
                                              "refused a message to it because it unsubscribed.")
    created_at = serializers.DateTimeField()
    livemode = serializers.BooleanField()

    def get_object(self, opt_out) -> str:
        return "opt_out"


class JsonBooleanField(serializers.BooleanField):
    """`true` or `false`: DRF's BooleanField would take "yes", "on", 1 or "0" too."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            raise serializers.ValidationError(f"'{self.field_name}' must be true or false.",
                                              code="parameter_invalid_type")
        return data


class ExportCreateSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["messages", "events"])
    format = serializers.ChoiceField(choices=["csv", "ndjson"], default="ndjson")
    csv_safe = JsonBooleanField(
        default=False, help_text="CSV only: a text cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage "
                                 "return gets a leading `'`, so that a spreadsheet shows it instead of running it as a "
                                 "formula. Such cells (phone numbers' `+` among them) then differ from the API's "
                                 "values; without it every cell is exact.")
    start = TimestampField(help_text="From (inclusive), ISO 8601.")
    end = TimestampField(help_text="To (exclusive), ISO 8601.")
    status = serializers.ChoiceField(choices=statuses.ALL, required=False, help_text="Messages only.")
    direction = serializers.ChoiceField(choices=[Message.OUTBOUND, Message.INBOUND], required=False,
                                        help_text="Messages only.")
    event_type = serializers.ChoiceField(choices=EVENT_TYPES, required=False, help_text="Events only.")

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": [serializers.ErrorDetail("'end' must be after 'start'.",
                                                                               code="parameter_invalid")]})
        wrong = ["event_type"] if attrs["type"] == "messages" else ["status", "direction"]
        for name in wrong:
            if name in attrs:
                raise serializers.ValidationError({name: [serializers.ErrorDetail(
                    f"'{name}' does not filter {attrs['type']}.", code="parameter_invalid")]})
        if attrs["csv_safe"] and attrs["format"] != "csv":
            raise serializers.ValidationError({"csv_safe": [serializers.ErrorDetail(
                "'csv_safe' applies to CSV exports only.", code="parameter_invalid")]})
        return attrs


class ExportSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    id = serializers.CharField(source="public_id")
    type = serializers.CharField()
    format = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    filters = serializers.DictField()
    csv_safe = serializers.BooleanField(help_text="Whether formula-like CSV cells were prefixed with `'`.")
    status = serializers.ChoiceField(choices=["pending", "running", "succeeded", "failed"])
    progress = serializers.IntegerField(help_text="0-100.")
    row_count = serializers.IntegerField()
    size = serializers.IntegerField(source="file_size", help_text="Bytes, once succeeded.")
    download_url = serializers.SerializerMethodField(help_text="Where to download it, once succeeded.")
    error = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True, help_text="The file is deleted then (7 days).")
    rewritten_at = serializers.DateTimeField(
        allow_null=True, help_text="When the file was last re-written to remove the bodies of messages redacted "
                                   "after it was made (their rows then read as a new export's would), else null.")
    livemode = serializers.BooleanField()

    def get_object(self, export) -> str:
        return "export"

    def get_download_url(self, export) -> str | None:
        if export.status != "succeeded" or export.file_deleted_at:
            return None
        return f"/v1/exports/{export.public_id}/download"

    def get_error(self, export) -> str | None:
        return export.error or None


class TestHelperInboundMessageSerializer(StrictSerializer):
    """A text from a phone to one of your senders, as the sandbox carrier hands it over (test mode only)."""

    from_ = PhoneNumberField(help_text="The phone that texts you, in E.164 format.")
    to = SenderField(help_text="One of your senders: the number it texts.")
    body = BodyField(help_text="The text, 1-1,600 characters. STOP, START and HELP (and the words like them) act as "
                               "they do from a phone.")

    def get_fields(self):
        # `from` is a Python keyword; renamed in place, so the documented order stays the declared one.
        return {"from" if name == "from_" else name: field for name, field in super().get_fields().items()}


class TestHelperDeliveryReportSerializer(StrictSerializer):
    """The outcome the sandbox carrier reports for a sent message (test mode only)."""

    status = serializers.ChoiceField(choices=list(sandbox.CARRIER_STATUSES), help_text="The outcome to report.")
    error_code = serializers.ChoiceField(
        choices=list(MESSAGE_ERRORS), required=False, allow_null=True, default=None,
        help_text="Why it failed, from the message error catalogue: with `undelivered` or `failed` only. Without it, "
                  "`unknown_subscriber` for `undelivered` and `carrier_rejected` for `failed`.")

    def validate(self, attrs):
        if attrs["error_code"] and attrs["status"] not in sandbox.DEFAULT_ERRORS:
            raise serializers.ValidationError({"error_code": [serializers.ErrorDetail(
                f"'error_code' goes with status {' or '.join(sandbox.DEFAULT_ERRORS)} only.",
                code="parameter_invalid")]})
        return attrs
