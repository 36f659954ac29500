r"""The message lifecycle on one screen.

    scheduled -> queued -> sending -> sent -> delivered
                                          \-> undelivered | failed
    (queued | sending) -> failed ; (scheduled | queued) -> canceled | expired ; inbound: received

A status never moves backwards and a final status never changes: a late or out-of-order carrier
report is recorded as ignored, not applied.
"""

SCHEDULED = "scheduled"
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"
CANCELED = "canceled"
EXPIRED = "expired"
RECEIVED = "received"

ALL = [SCHEDULED, QUEUED, SENDING, SENT, DELIVERED, UNDELIVERED, FAILED, CANCELED, EXPIRED, RECEIVED]
CHOICES = [(status, status) for status in ALL]
FINAL = frozenset({DELIVERED, UNDELIVERED, FAILED, CANCELED, EXPIRED, RECEIVED})

# Allowed moves. A carrier may report delivery before we have recorded its acceptance (the
# report races our write), so `sending` may move straight to a delivery outcome.
TRANSITIONS: dict[str, frozenset[str]] = {
    SCHEDULED: frozenset({QUEUED, CANCELED, EXPIRED}),
    QUEUED: frozenset({SENDING, FAILED, CANCELED, EXPIRED}),
    SENDING: frozenset({SENT, DELIVERED, UNDELIVERED, FAILED, EXPIRED}),
    SENT: frozenset({DELIVERED, UNDELIVERED, FAILED}),
}

# The webhook event type each status change announces (`message.failed` covers every failure).
EVENT_TYPES: dict[str, str] = {
    SCHEDULED: "message.scheduled",
    QUEUED: "message.queued",
    SENT: "message.sent",
    DELIVERED: "message.delivered",
    UNDELIVERED: "message.failed",
    FAILED: "message.failed",
    EXPIRED: "message.failed",
    CANCELED: "message.canceled",
    RECEIVED: "message.inbound",
}


# The statuses whose moment the message object shows, each as `<status>_at` (a model field and an API field):
# stamped by `transition` when the message enters the status, null until then.
TIMED = (SENT, DELIVERED, UNDELIVERED, FAILED, CANCELED, EXPIRED)
TIME_FIELDS = [f"{status}_at" for status in TIMED]


def time_field(status: str) -> str | None:
    """The field that records when a message entered `status`, or None for a status whose time is not kept."""
    return f"{status}_at" if status in TIMED else None


def is_final(status: str) -> bool:
    return status in FINAL


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())
