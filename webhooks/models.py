"""Events and their delivery to the customer's endpoints (an outbox, after Saleor's webhooks).

An `Event` is written in the same transaction as the change it reports, its payload serialized once;
one `Delivery` per receiver is created with it; each try is a `DeliveryAttempt` (`whd_…`). `webhooks`
never imports `messaging`: it is given account ids and the payload.
"""

import hashlib
import json

from django.contrib.postgres.indexes import HashIndex
from django.db import models
from django.db.models import Q

from mittis import versions
from mittis.accounts.models import Account
from mittis.ids import public_id_default
from webhooks.compression import CompressedTextField


class WebhookEndpoint(models.Model):
    ENABLED, DISABLED = "enabled", "disabled"
    STATUSES = [(ENABLED, "enabled"), (DISABLED, "disabled")]
    ALL_EVENTS = "*"

    public_id = models.CharField(max_length=40, default=public_id_default("we"), editable=False)  # unique: Meta (mittis/ids.py)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_endpoints",
                                db_index=False)  # endpoint_list_idx leads with it
    livemode = models.BooleanField()
    url = models.URLField(max_length=2048)
    description = models.CharField(max_length=500, blank=True)
    enabled_events = models.JSONField(default=list, help_text='Event types, or ["*"] for all.')
    status = models.CharField(max_length=10, choices=STATUSES, default=ENABLED)
    disabled_reason = models.CharField(max_length=200, blank=True)
    # The API version its payloads are rendered in: the account's when it was created, unless the customer chose.
    # The first version in rows written by code that predates versions.
    api_version = models.CharField(max_length=10, db_default=versions.FIRST_VERSION, validators=[versions.validate])
    # Encrypted with mittis.crypto; the previous secret keeps signing until it expires (rotation).
    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set by the first failed attempt after a success; an endpoint failing for days is disabled.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["public_id"], name="endpoint_public_id_unique")]
        indexes = [models.Index(fields=["account", "livemode", "-id"], name="endpoint_list_idx")]
        verbose_name = "webhook endpoint"
        permissions = [("recover_endpoint", "Can recover an endpoint's failed events")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.url}"

    def subscribes_to(self, event_type: str) -> bool:
        return self.ALL_EVENTS in self.enabled_events or event_type in self.enabled_events


class CallbackSecret(models.Model):
    """The account's secret for signing per-message `status_callback` requests, one per mode."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+",
                                db_index=False)  # callback_secret_unique leads with it
    livemode = models.BooleanField()
    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "livemode"], name="callback_secret_unique")]


class Event(models.Model):
    """Something that happened to an account's object, as the receivers get it (`"object": "event"`)."""

    public_id = models.CharField(max_length=40, editable=False)  # unique: Meta (mittis/ids.py)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+",
                                db_index=False)  # event_list_idx leads with it
    livemode = models.BooleanField()
    type = models.CharField(max_length=40)
    # The object the event is about (`msg_…`) and its per-object order.
    object_id = models.CharField(max_length=40)
    sequence = models.PositiveIntegerField()
    # The exact JSON body every receiver gets, serialized once when the event happened: the one copy of the
    # object as it was then (the object's timeline, `GET /v1/events` and every delivery read it). Kept
    # compressed, read and written as text (webhooks/compression.py).
    payload = CompressedTextField()
    # The object's status the event reports, and what the outside world said of it verbatim (a carrier's
    # status, for staff answering "what happened to my message?"): columns, so the staff console and the
    # timeline read them without parsing the payload.
    status = models.CharField(max_length=12, blank=True, db_default="")
    carrier_status = models.CharField(max_length=64, blank=True, db_default="")
    created_at = models.DateTimeField()

    # Partitioned by month of it (mittis/partitions.py), with its deliveries: old months are dropped whole.
    PARTITION_KEY = "created_at"

    class Meta:
        ordering = ["-id"]
        # No unique constraint: a partitioned table holds none without the month (mittis/partitions.py). The id is
        # random (mittis/ids.py); an object's events are numbered 1, 2, 3... under its row lock, never two with
        # one number (`Message.event_sequence`).
        indexes = [
            models.Index(fields=["account", "livemode", "-id"], name="event_list_idx"),
            models.Index(fields=["account", "livemode", "type", "-id"], name="event_type_idx"),
            models.Index(fields=["account", "livemode", "created_at"], name="event_time_idx"),
            # Hash indexes where a query only ever asks "equal to": a 4-byte hash a row, not the 28-character id
            # (15 MiB against 18 and 22 for B-trees at 100,000 messages); an object's few events are sorted by
            # sequence once found.
            HashIndex(fields=["public_id"], name="event_public_id_idx"),
            # The object's timeline, and its redaction.
            HashIndex(fields=["object_id"], name="event_object_idx"),
        ]
        permissions = [("redeliver_event", "Can redeliver an event")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"

    @property
    def data(self) -> dict:
        """The object as it was when the event happened (the payload's `data`)."""
        return json.loads(self.payload)["data"]


LANE_KEYS = 1 << 28  # lane keys are 0 ≤ key < LANE_KEYS; lane n of N takes the n-th Nth of them


def lane_key(object_id: str) -> int:
    """The key that picks an endpoint delivery's flush lane: a hash of the object id, so every event of one
    message goes out in one lane, in order."""
    return int(hashlib.md5(object_id.encode(), usedforsecurity=False).hexdigest()[:7], 16)


class Delivery(models.Model):
    """One event to one receiver: an endpoint, or a message's `status_callback` URL."""

    PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
    STATUSES = [(PENDING, "pending"), (SUCCEEDED, "succeeded"), (FAILED, "failed")]

    # No foreign key in the database: the event's primary key is (id, created_at), its table partitioned. The
    # delivery lives in its event's month (its partition key is the event's), and goes with it.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries", db_constraint=False)
    event_created_at = models.DateTimeField()
    # No index of its own: delivery_endpoint_idx leads with it.
    endpoint = models.ForeignKey(WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="deliveries", db_index=False)
    callback_url = models.URLField(max_length=2048, blank=True)
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # Held by the task making an attempt, so the sweeper and a late task never attempt twice at once.
    locked_until = models.DateTimeField(null=True, blank=True)
    # `lane_key(event.object_id)`, kept on the row so a flush claims its lane's next batch from an index
    # instead of hashing every pending delivery of the endpoint through a join.
    lane_key = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    PARTITION_KEY = "event_created_at"

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="delivery_due_idx"),
            models.Index(fields=["endpoint", "status"], name="delivery_endpoint_idx"),
            # A flush's claim: the endpoint's pending deliveries oldest first, read until a batch is found.
            models.Index(fields=["endpoint", "id"], condition=Q(status="pending"), name="delivery_pending_idx"),
        ]
        constraints = [models.CheckConstraint(
            condition=Q(endpoint__isnull=False) | ~Q(callback_url=""), name="delivery_has_receiver")]

    def __str__(self) -> str:
        return f"{self.event.public_id} → {self.endpoint.public_id if self.endpoint else self.callback_url}"

    @property
    def url(self) -> str:
        return self.endpoint.url if self.endpoint else self.callback_url


class DeliveryAttempt(models.Model):
    """One HTTP request to a receiver, as it went: kept for the customer and for staff."""

    RESPONSE_BODY_LIMIT = 2048

    public_id = models.CharField(max_length=40, default=public_id_default("whd"), editable=False)  # unique: Meta (mittis/ids.py)
    # No foreign key in the database: the delivery's table is partitioned (its primary key has the month in it).
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows", db_constraint=False)
    endpoint = models.ForeignKey(WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="attempts", db_index=False)  # attempt_endpoint_idx leads with it
    number = models.PositiveSmallIntegerField()
    url = models.URLField(max_length=2048)
    attempted_at = models.DateTimeField()
    succeeded = models.BooleanField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, help_text="The first 2 KB.")
    latency_ms = models.PositiveIntegerField()
    error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    # Partitioned by month of it (mittis/partitions.py): old months are dropped whole.
    PARTITION_KEY = "attempted_at"

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["endpoint", "-id"], name="attempt_endpoint_idx"),
            # Not a unique constraint, which a partitioned table cannot hold without the month: the id is random
            # (mittis/ids.py), and this finds it (a hash: only ever looked up by equality, see Event's).
            HashIndex(fields=["public_id"], name="delivery_attempt_public_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} #{self.number} {self.response_status or self.error}"
