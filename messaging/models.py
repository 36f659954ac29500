from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from messaging import statuses
from mittis.accounts.models import Account
from mittis.ids import public_id_default
from webhooks.models import Event


class Sender(models.Model):
    """A `from` an account may use: an E.164 number or an alphanumeric sender id."""

    PHONE_NUMBER = "phone_number"
    ALPHANUMERIC = "alphanumeric"
    # What the carriers allow each kind of sender to send per second (settings.MITTIS_SENDER_MPS).
    LONG_CODE, TOLL_FREE, SHORT_CODE = "long_code", "toll_free", "short_code"
    NUMBER_TYPES = [(LONG_CODE, "Long code"), (TOLL_FREE, "Toll-free"), (SHORT_CODE, "Short code"),
                    (ALPHANUMERIC, "Alphanumeric")]

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="senders",
                                db_index=False)  # sender_unique_per_account leads with it
    value = models.CharField(max_length=16, help_text="E.164 number (+18045550142) or sender id (Mittis).")
    kind = models.CharField(max_length=16, choices=[(PHONE_NUMBER, "Phone number"), (ALPHANUMERIC, "Alphanumeric")])
    number_type = models.CharField(max_length=16, choices=NUMBER_TYPES, blank=True,
                                   help_text="Sets the default throughput; blank to derive it from the value.")
    mps = models.PositiveIntegerField(null=True, blank=True,
                                      help_text="Messages per second from this sender; blank for its type's default.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "value"], name="sender_unique_per_account")]

    def __str__(self) -> str:
        return self.value


class Message(models.Model):
    OUTBOUND = "outbound"
    INBOUND = "inbound"

    public_id = models.CharField(max_length=40, default=public_id_default("msg"), editable=False)  # unique: Meta (mittis/ids.py)
    # Indexed by message_list_idx, which leads with it: every index is written again by each status change.
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="messages", db_index=False)
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
    # A message whose next attempt is a send task's own (its carrier does not batch, its sender is at its
    # rate, or it waits for a retry): the batch dispatchers and the sweeps leave it alone until then.
    dispatch_after = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    # The sequence number of this message's latest event; events are numbered under the row lock.
    event_sequence = models.PositiveIntegerField(default=0)

    # Scheduled sends wait for `send_at`; nothing is handed to a carrier after `expires_at`.
    send_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Set when the body was removed (retention or on request); status, counts and price stay.
    redacted_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When the message entered each status that has a time (statuses.TIMED), stamped by `transition` alone.
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    undelivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The list endpoint: one account and mode, newest first, optionally by status.
            models.Index(fields=["account", "livemode", "-id"], name="message_list_idx"),
            models.Index(fields=["account", "livemode", "status", "-id"], name="message_status_idx"),
            models.Index(fields=["account", "livemode", "to", "-id"], name="message_to_idx"),
            # Delivery reports arrive with the carrier's id. The id leads: a batch's lookup by 100 ids must
            # probe the index for each, and with the carrier first, statistics that thought the carrier rare
            # (stale, or a new carrier) made PostgreSQL read every message of the carrier instead.
            models.Index(fields=["carrier_message_id", "carrier"], name="message_carrier_ref_idx"),
            # Partial: each of the beat's sweeps and the dispatchers' claims reads an index holding only the
            # messages it looks for, so one with nothing to do reads next to nothing however many messages
            # exist; a message leaves them as it moves on (a status change writes every index the row is in).
            # Claims, requeue_stale, recover_interrupted and close_stuck's `sending` half:
            models.Index(fields=["status", "updated_at"], name="message_waiting_idx",
                         condition=Q(status__in=[statuses.QUEUED, statuses.SENDING])),
            # recover_lost_reports and close_stuck's `sent` half: by when the carrier took it.
            models.Index(fields=["sent_at"], name="message_sent_idx", condition=Q(status=statuses.SENT)),
            models.Index(fields=["send_at"], name="message_scheduled_idx", condition=Q(status=statuses.SCHEDULED)),
            models.Index(fields=["expires_at"], name="message_expiry_idx",
                         condition=Q(status__in=[statuses.SCHEDULED, statuses.QUEUED])),
            # Redaction past retention: an account's messages not yet redacted, oldest first. A message leaves
            # it once redacted, so the nightly run reads only the night's work.
            models.Index(fields=["account", "created_at"], name="message_retention_idx",
                         condition=Q(redacted_at__isnull=True)),
            # The staff console's searches and date drill-down.
            models.Index(fields=["from_number", "-id"], name="message_from_idx"),
            models.Index(fields=["created_at"], name="message_created_idx"),
        ]
        constraints = [models.UniqueConstraint(fields=["public_id"], name="message_public_id_unique")]
        permissions = [("cancel_message", "Can cancel a scheduled message")]

    def __str__(self) -> str:
        return self.public_id

    @property
    def events(self) -> QuerySet[Event]:
        """The message's timeline: its events (`webhooks.Event`, one row an event, with the message as it was
        then in the payload), oldest first. None is older than the message: only the months since are read."""
        return Event.objects.filter(account_id=self.account_id, livemode=self.livemode, object_id=self.public_id,
                                    created_at__gte=self.created_at).order_by("sequence")


class RetentionMark(models.Model):
    """How far the nightly redaction past retention (`messages_redact_past_retention`) has got in an account's
    messages: every one created before `redacted_before` is redacted. Its candidates are read from there up to the
    cutoff, a bounded range of message_retention_idx, instead of from a MIN whose plan PostgreSQL may take through
    message_created_idx from the table's oldest row. A message not final yet (scheduled weeks ahead) holds it
    where it is until it is redacted. An account without one has had nothing redacted by the job: none of its
    messages is older than the account (the API stamps both), so the range starts at the account's creation."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, primary_key=True,
                                   related_name="retention_mark")
    redacted_before = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.account_id}: redacted before {self.redacted_before:%Y-%m-%d %H:%M}"


class SendAttemptQuerySet(models.QuerySet):
    def of(self, message_ids, *, since) -> "SendAttemptQuerySet":
        """The attempts of the messages `message_ids`, the oldest of which was created at `since`. None is older
        than its message (its writers see to that), so PostgreSQL reads only the months since (the partitions)."""
        return self.filter(message_id__in=message_ids, started_at__gte=since)


class SendAttempt(models.Model):
    """One try of one carrier for one message: what the API shows as the message's `attempts`. None is older than its
    message: read a message's through `SendAttempt.objects.of`, which starts there."""

    ACCEPTED, TEMPORARY_ERROR, REJECTED, UNKNOWN, SKIPPED = (
        "accepted", "temporary_error", "rejected", "unknown", "skipped")
    OUTCOMES = [(o, o) for o in (ACCEPTED, TEMPORARY_ERROR, REJECTED, UNKNOWN, SKIPPED)]

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attempts",
                                db_index=False)  # attempt_number_idx leads with it
    number = models.PositiveSmallIntegerField(help_text="1, 2, 3... across carriers and retries.")
    carrier = models.CharField(max_length=32)
    started_at = models.DateTimeField()
    latency_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=16, choices=OUTCOMES)
    carrier_message_id = models.CharField(max_length=100, blank=True)
    raw_code = models.CharField(max_length=64, blank=True, help_text="What the carrier said, verbatim.")
    error_code = models.CharField(max_length=64, blank=True, help_text="Our normalised code.")
    error_message = models.CharField(max_length=500, blank=True)

    # Partitioned by month of it (mittis/partitions.py): old months are dropped whole. Never before the message's
    # `created_at`, which bounds every read of a message's attempts.
    PARTITION_KEY = "started_at"

    objects = SendAttemptQuerySet.as_manager()

    class Meta:
        ordering = ["message_id", "number"]
        # An index, not a unique constraint (partitioned: mittis/partitions.py). A message's numbers stay unique as
        # one writer at a time numbers them: a send holding the attempt's claim (the conditional UPDATE of
        # `send_attempts`: services/send.py claim_attempt, services/dispatch.py _claim_batch), which counts the rows
        # of the attempts before, all written before their retry was scheduled; or the interrupted-send sweep
        # (services/sweeps.py), under the row lock once the claim is older than any send lives, failing the message
        # in that transaction.
        indexes = [models.Index(fields=["message", "number"], name="attempt_number_idx")]


class CarrierReport(models.Model):
    """Every delivery report as it arrived. One for an id we do not know yet stays unmatched and is
    applied when a send learns that id (a report can overtake the carrier's answer to the submit)."""

    carrier = models.CharField(max_length=32)
    carrier_message_id = models.CharField(max_length=100)
    status = models.CharField(max_length=12, choices=statuses.CHOICES)
    raw = models.JSONField(help_text="The report as the carrier sent it.")
    received_at = models.DateTimeField(auto_now_add=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="reports")

    # Partitioned by month of it (mittis/partitions.py): old months are dropped whole.
    PARTITION_KEY = "received_at"

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["carrier", "carrier_message_id"], name="report_carrier_ref_idx")]


class CarrierInbound(models.Model):
    """Every inbound message as its carrier handed it: the text as we decoded it beside the PDU or form as it
    came (an SMPP body's exact octets in hex). One to a number no active account has keeps no message: it is
    never dropped, and staff find it under the admin's unrouted filter."""

    carrier = models.CharField(max_length=32)
    from_number = models.CharField("from", max_length=64)
    to = models.CharField(max_length=64)
    body = models.TextField(blank=True)
    raw = models.JSONField(help_text="The message as the carrier sent it.")
    received_at = models.DateTimeField(auto_now_add=True)
    message = models.OneToOneField(Message, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="carrier_inbound")

    class Meta:
        ordering = ["-id"]
        verbose_name = "inbound message as received"
        verbose_name_plural = "inbound messages as received"
        indexes = [models.Index(fields=["id"], condition=Q(message__isnull=True), name="inbound_unrouted_idx")]


class OptOut(models.Model):
    """A phone number that texted STOP to one of the account's senders, or that a carrier refused a message to
    as unsubscribed (keyword CARRIER): no more messages to it."""

    public_id = models.CharField(max_length=40, default=public_id_default("opt"), editable=False)  # unique: Meta (mittis/ids.py)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="opt_outs",
                                db_index=False)  # opt_out_unique leads with it
    livemode = models.BooleanField()
    phone_number = models.CharField(max_length=16)
    sender = models.CharField(max_length=16, help_text="The sender the STOP was sent to.")
    keyword = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["public_id"], name="opt_out_public_id_unique"),
                       models.UniqueConstraint(fields=["account", "livemode", "phone_number"], name="opt_out_unique")]


class Carrier(models.Model):
    """An upstream carrier account: how to reach it (settings), how to log in (credentials, encrypted),
    how fast it may be sent to (tps), and its circuit breaker."""

    SANDBOX, SMPP, TWILIO = "sandbox", "smpp", "twilio"
    KINDS = [(SANDBOX, "Sandbox"), (SMPP, "SMPP 3.4"), (TWILIO, "Twilio REST API")]
    CLOSED, OPEN = "closed", "open"

    name = models.SlugField(max_length=32, help_text="Recorded on every message it sends.")  # unique: Meta (mittis/ids.py)
    kind = models.CharField(max_length=16, choices=KINDS)
    enabled = models.BooleanField(default=True)
    settings = models.JSONField(default=dict, blank=True,
                                help_text="Not secret. SMPP: host, port, system_id, system_type, window, country "
                                          "(the ISO code of its national numbers). Twilio: account_sid, base_url.")
    credentials_encrypted = models.TextField(blank=True, editable=False)
    tps = models.PositiveIntegerField(default=10, help_text="Messages per second the carrier accepts from us.")
    breaker_state = models.CharField(max_length=8, default=CLOSED, editable=False)
    breaker_failures = models.PositiveIntegerField(default=0, editable=False)
    breaker_opened_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["name"], name="carrier_name_unique")]

    def __str__(self) -> str:
        return self.name

    @property
    def credentials(self) -> dict:
        """The secret part (SMPP password, Twilio auth token), decrypted when needed, never stored clear."""
        import json

        from mittis import crypto

        return json.loads(crypto.decrypt(self.credentials_encrypted)) if self.credentials_encrypted else {}

    @credentials.setter
    def credentials(self, value: dict) -> None:
        import json

        from mittis import crypto

        self.credentials_encrypted = crypto.encrypt(json.dumps(value)) if value else ""


class Route(models.Model):
    """Which carriers send to a destination, in order. The most specific route wins: a prefix, then a
    country, then the default route (both blank)."""

    prefix = models.CharField(max_length=16, blank=True, help_text="An E.164 prefix such as +4474.")
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2, such as GB.")
    livemode = models.BooleanField(default=True, help_text="Test mode always uses the sandbox unless routed here.")
    carriers = models.ManyToManyField(Carrier, through="RouteCarrier", related_name="routes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["livemode", "prefix", "country"], name="route_unique")]

    def __str__(self) -> str:
        return self.prefix or self.country or "default"


class RouteCarrier(models.Model):
    """A carrier on a route: lower `position` is tried first; carriers sharing a position split the
    traffic by `weight`."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="entries",
                              db_index=False)  # route_carrier_unique leads with it
    carrier = models.ForeignKey(Carrier, on_delete=models.CASCADE)
    position = models.PositiveSmallIntegerField(default=1)
    weight = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["route_id", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["route", "carrier"], name="route_carrier_unique")]


class SmppBind(models.Model):
    """The state of one carrier's long-running SMPP session, written by its bind process."""

    carrier = models.OneToOneField(Carrier, on_delete=models.CASCADE, related_name="smpp_bind")
    state = models.CharField(max_length=16, default="connecting")  # connecting, bound, failed
    last_error = models.CharField(max_length=300, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)


class SmppSubmission(models.Model):
    """A message handed from a send task to the carrier's bind process, and the bind's answer."""

    PENDING, SUBMITTING, ACCEPTED, REJECTED, FAILED, CANCELED = (
        "pending", "submitting", "accepted", "rejected", "failed", "canceled")

    carrier = models.ForeignKey(Carrier, on_delete=models.CASCADE, related_name="+",
                                db_index=False)  # smpp_submission_queue_idx leads with it
    reference = models.CharField(max_length=40, help_text="Our message id.")
    sender = models.CharField(max_length=16)
    to = models.CharField(max_length=16)
    body = models.TextField()
    validity_seconds = models.PositiveIntegerField(null=True, blank=True,
                                                   help_text="Told to the SMSC as a relative validity_period.")
    status = models.CharField(max_length=12, default=PENDING)
    carrier_message_id = models.CharField(max_length=100, blank=True)
    command_status = models.CharField(max_length=32, blank=True, help_text="The SMPP error, verbatim.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["carrier", "status", "id"], name="smpp_submission_queue_idx")]


class SmppPart(models.Model):
    """A submit_sm the SMSC accepted: a part of a submission, with the SMSC's id for it, so that the receipt of
    any part finds its message, after the bind restarted too. An SMSC that restarts may begin its ids again:
    the newest part with an id is the one a receipt is about."""

    submission = models.ForeignKey(SmppSubmission, on_delete=models.CASCADE, related_name="parts")
    carrier = models.ForeignKey(Carrier, on_delete=models.CASCADE, related_name="+",
                                db_index=False)  # smpp_part_ref_idx has it
    message_id = models.CharField(max_length=100, help_text="The SMSC's id of this part.")
    number = models.PositiveSmallIntegerField(help_text="1, 2, 3... in the message.")
    total = models.PositiveSmallIntegerField(help_text="The message's parts.")
    delivered = models.BooleanField(default=False)

    class Meta:
        # A receipt names the part's id: it leads, as in message_carrier_ref_idx.
        indexes = [models.Index(fields=["message_id", "carrier"], name="smpp_part_ref_idx")]


class Export(models.Model):
    """A bulk export of an account's messages or events, written by a task into a file in the
    `exports` storage (never into the database), downloadable until `expires_at`."""

    MESSAGES, EVENTS = "messages", "events"
    CSV, NDJSON = "csv", "ndjson"
    PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"

    public_id = models.CharField(max_length=40, default=public_id_default("exp"), editable=False)  # unique: Meta (mittis/ids.py)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="exports",
                                db_index=False)  # export_list_idx leads with it
    livemode = models.BooleanField()
    type = models.CharField(max_length=10, choices=[(MESSAGES, "messages"), (EVENTS, "events")])
    format = models.CharField(max_length=10, choices=[(CSV, "CSV"), (NDJSON, "NDJSON")])
    start = models.DateTimeField()
    end = models.DateTimeField()
    filters = models.JSONField(default=dict, blank=True)
    # Cells that a spreadsheet would run as a formula are prefixed with `'` (CSV only; see messaging.exports).
    csv_safe = models.BooleanField(default=False, db_default=False)
    status = models.CharField(max_length=10, default=PENDING, choices=[
        (s, s) for s in (PENDING, RUNNING, SUCCEEDED, FAILED)])
    progress = models.PositiveSmallIntegerField(default=0)
    row_count = models.PositiveIntegerField(default=0)  # written so far: moves at each slice's checkpoint
    # The file, in the `exports` storage: its parts in order, one per slice of the run (messaging.exports), served
    # as one file; a re-write (`export_scrub`) makes it one part again. The list is the file's version.
    file_parts = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    file_size = models.PositiveBigIntegerField(default=0)
    # The run's checkpoint, written with each part once the part is in storage: the key (id) of the last row in the
    # file, the rows counted when it started (progress's denominator), and when it last moved, created or claimed
    # or a part written (a pending or running export that has not moved for a while lost its task).
    last_key = models.BigIntegerField(default=0, db_default=0)
    row_total = models.PositiveIntegerField(default=0, db_default=0)
    moved_at = models.DateTimeField(default=timezone.now, db_default=Now())
    error = models.CharField(max_length=300, blank=True)
    created_by = models.CharField(max_length=150, blank=True, help_text="The staff user, for exports started in the admin.")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    file_deleted_at = models.DateTimeField(null=True, blank=True)
    # Redactions of messages this export's file may hold, not yet applied to it: the file is re-written
    # (messaging.exports.export_scrub) and is not served meanwhile. A count, so that one arriving during a
    # re-write is not cleared with the ones the re-write applied.
    redactions_pending = models.PositiveIntegerField(default=0, db_default=0)
    rewritten_at = models.DateTimeField(null=True, blank=True, help_text="When the file was last re-written to "
                                        "remove bodies redacted after it was made.")

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["public_id"], name="export_public_id_unique")]
        indexes = [
            models.Index(fields=["account", "livemode", "-id"], name="export_list_idx"),
            # The beat's two sweeps of files: those to delete once expired, and those to re-write after a redaction.
            # Export rows are kept for ever; each index holds only the files still there.
            models.Index(fields=["expires_at"], name="export_expiry_idx",
                         condition=Q(file_deleted_at__isnull=True) & ~Q(file_parts=[])),
            # The sweep of exports whose task was lost (messaging.resume_exports): only those not finished.
            models.Index(fields=["moved_at"], name="export_unfinished_idx",
                         condition=Q(status__in=["pending", "running"])),
            models.Index(fields=["id"], name="export_scrub_idx", condition=Q(
                redactions_pending__gt=0, status="succeeded", file_deleted_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return self.public_id
