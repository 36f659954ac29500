"""The API's objects as typed models.

They tolerate what a later API adds: an unknown field is kept (readable as an attribute and in
`model_dump()`), and an enum-like field (`status`, `type`...) is a `str`, so a new value never breaks parsing.
The `Literal` aliases below name the values this release knows, for editors and for your own `match`.
Money is `Decimal`, times are aware `datetime`s in UTC. `from` is a Python keyword: it is `from_` here, and
`from` on the wire.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

MessageStatus = Literal["scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed",
                        "canceled", "expired", "received"]
EventType = Literal["message.scheduled", "message.queued", "message.sent", "message.delivered", "message.failed",
                    "message.canceled", "message.inbound"]
Direction = Literal["outbound", "inbound"]
Encoding = Literal["GSM-7", "UCS-2"]
ExportStatus = Literal["pending", "running", "succeeded", "failed"]
LedgerEntryType = Literal["top_up", "charge", "refund", "adjustment"]
SendOutcome = Literal["accepted", "temporary_error", "rejected", "unknown", "skipped"]


class MittisObject(BaseModel):
    """An object of the API. Unknown fields are kept, never refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    def to_dict(self) -> dict[str, Any]:
        """The object as the API sent it (`from`, not `from_`), unknown fields included."""
        return self.model_dump(mode="json", by_alias=True)


class SendAttempt(MittisObject):
    """One try at handing the message to a carrier."""

    attempted_at: datetime
    carrier: str
    carrier_message_id: Optional[str] = None
    outcome: Union[SendOutcome, str]
    raw_code: Optional[str] = None
    error_code: Optional[str] = None
    latency_ms: int


class Message(MittisObject):
    object: str = "message"
    id: str
    status: Union[MessageStatus, str]
    direction: Union[Direction, str]
    from_: str = Field(alias="from")
    to: str
    body: Optional[str] = None  # null once redacted
    encoding: Union[Encoding, str]
    segments: int
    price: Decimal
    currency: str
    metadata: dict[str, str] = {}
    status_callback: Optional[str] = None
    error_code: Optional[str] = None
    error_message: Optional[str] = None
    retryable: Optional[bool] = None
    attempts: list[SendAttempt] = []
    send_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    redacted_at: Optional[datetime] = None
    created_at: datetime
    updated_at: datetime
    sent_at: Optional[datetime] = None
    delivered_at: Optional[datetime] = None
    undelivered_at: Optional[datetime] = None
    failed_at: Optional[datetime] = None
    canceled_at: Optional[datetime] = None
    expired_at: Optional[datetime] = None
    livemode: bool


class MessagePreview(MittisObject):
    object: str = "message_preview"
    encoding: Union[Encoding, str]
    segments: int
    non_gsm_characters: list[str] = []
    country: Optional[str] = None
    unit_price: Decimal
    price: Decimal
    currency: str


class Event(MittisObject):
    """Something that happened to a message, as webhooks deliver it. `data` is the message at that moment (a
    plain dict for an event type this release does not model)."""

    object: str = "event"
    id: str
    type: Union[EventType, str]
    sequence: int
    created_at: datetime
    livemode: bool
    # A Message when it is one; left to right, so a message is never kept as a bare dict.
    data: Union[Message, dict[str, Any]] = Field(union_mode="left_to_right")


class WebhookEndpoint(MittisObject):
    object: str = "webhook_endpoint"
    id: str
    url: str
    description: str = ""
    enabled_events: list[str]
    status: Union[Literal["enabled", "disabled"], str]
    disabled_reason: Optional[str] = None
    api_version: str
    created_at: datetime
    updated_at: datetime
    livemode: bool
    secret: Optional[str] = None  # only in the answers that create it or rotate it


class DeletedWebhookEndpoint(MittisObject):
    object: str = "webhook_endpoint"
    id: str
    deleted: bool = True


class WebhookDeliveryAttempt(MittisObject):
    object: str = "webhook_delivery"
    id: str
    event: str
    event_type: str
    url: str
    attempt: int
    attempted_at: datetime
    succeeded: bool
    response_status: Optional[int] = None
    response_body: str = ""
    latency_ms: int
    error: Optional[str] = None
    next_attempt_at: Optional[datetime] = None


class EventRedelivery(MittisObject):
    object: str = "event_redelivery"
    event: str
    endpoints: list[str]


class WebhookRecovery(MittisObject):
    object: str = "webhook_recovery"
    endpoint: str
    since: datetime
    until: datetime
    status: str


class Export(MittisObject):
    object: str = "export"
    id: str
    type: Union[Literal["messages", "events"], str]
    format: Union[Literal["csv", "ndjson"], str]
    status: Union[ExportStatus, str]
    start: datetime
    end: datetime
    filters: dict[str, Any] = {}
    csv_safe: bool = False
    progress: int = 0
    row_count: int = 0
    size: int = 0
    error: Optional[str] = None
    download_url: Optional[str] = None
    created_at: datetime
    completed_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    rewritten_at: Optional[datetime] = None
    livemode: bool


class OptOut(MittisObject):
    object: str = "opt_out"
    id: str
    phone_number: str
    sender: str
    keyword: str
    created_at: datetime
    livemode: bool


class Balance(MittisObject):
    object: str = "balance"
    available: Decimal
    currency: str
    livemode: bool


class LedgerEntry(MittisObject):
    object: str = "ledger_entry"
    id: str
    type: Union[LedgerEntryType, str]
    amount: Decimal
    currency: str
    reason: Optional[str] = None
    message: Optional[str] = None
    created_at: datetime
    livemode: bool


class Price(MittisObject):
    country: Optional[str] = None
    price: Decimal
    currency: str
    effective_from: Union[datetime, date, str]


class PriceTable(MittisObject):
    object: str = "price_table"
    unit: str
    default: Price
    countries: list[Price] = []
    upcoming: list[Price] = []


class UsageRow(MittisObject):
    day: Optional[date] = None
    country: Optional[str] = None
    status: Optional[str] = None
    messages: int
    segments: int
    amount: Decimal


class Usage(MittisObject):
    object: str = "usage"
    start: Union[datetime, date]
    end: Union[datetime, date]
    group_by: str
    currency: str
    livemode: bool
    data: list[UsageRow]


class CallbackSecret(MittisObject):
    object: str = "callback_secret"
    secret: str
    livemode: bool
