from django.db import models

from messaging import statuses
from mittis.accounts.models import Account
from mittis.api.ids import public_id_default


class Sender(models.Model):
    """A `from` an account may use: an E.164 number or an alphanumeric sender id."""

    PHONE_NUMBER = "phone_number"
    ALPHANUMERIC = "alphanumeric"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="senders")
    value = models.CharField(max_length=16, help_text="E.164 number (+18045550142) or sender id (Mittis).")
    kind = models.CharField(max_length=16, choices=[(PHONE_NUMBER, "Phone number"), (ALPHANUMERIC, "Alphanumeric")])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "value"], name="sender_unique_per_account")]

    def __str__(self) -> str:
        return self.value


class Message(models.Model):
    OUTBOUND = "outbound"
    INBOUND = "inbound"

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("msg"), editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="messages")
    livemode = models.BooleanField()
    direction = models.CharField(max_length=8, choices=[(OUTBOUND, OUTBOUND), (INBOUND, INBOUND)], default=OUTBOUND)
    status = models.CharField(max_length=12, choices=statuses.CHOICES)
    from_number = models.CharField("from", max_length=16)
    to = models.CharField(max_length=16)
    body = models.TextField()
    encoding = models.CharField(max_length=5)
    segments = models.PositiveIntegerField()
    # The destination's ISO 3166 country, which priced the message.
    country = models.CharField(max_length=2, blank=True)
    price = models.DecimalField(max_digits=18, decimal_places=6)
    currency = models.CharField(max_length=3)
    metadata = models.JSONField(default=dict, blank=True)
    # Gets this message's events besides the account's endpoints (signed with the callback secret).
    status_callback = models.URLField(max_length=2048, blank=True)

    carrier = models.CharField(max_length=32, blank=True)
    carrier_message_id = models.CharField(max_length=100, blank=True)
    # Which send attempt holds the claim: a task runs only if it claims the next attempt number,
    # so a duplicate task delivery never sends twice.
    send_attempts = models.PositiveSmallIntegerField(default=0)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    # The sequence number of this message's latest event; events are numbered under the row lock.
    event_sequence = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The list endpoint: one account and mode, newest first, optionally by status.
            models.Index(fields=["account", "livemode", "-id"], name="message_list_idx"),
            models.Index(fields=["account", "livemode", "status", "-id"], name="message_status_idx"),
            models.Index(fields=["account", "livemode", "to", "-id"], name="message_to_idx"),
            # Delivery reports arrive with the carrier's id.
            models.Index(fields=["carrier", "carrier_message_id"], name="message_carrier_ref_idx"),
            models.Index(fields=["status", "updated_at"], name="message_status_age_idx"),
        ]

    def __str__(self) -> str:
        return self.public_id


class MessageEvent(models.Model):
    """One step of a message's timeline, with the message as it was at that moment (frozen)."""

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("evt"), editable=False)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=32)
    status = models.CharField(max_length=12, choices=statuses.CHOICES)
    sequence = models.PositiveIntegerField()
    data = models.JSONField(help_text="The message object as the API returned it at this moment.")
    # What the carrier said, raw, for staff answering "what happened to my message?".
    carrier_status = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "sequence"], name="event_sequence_unique")]
        ordering = ["message_id", "sequence"]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"
