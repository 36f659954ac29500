"""The API's resources, as `client.messages`, `client.webhook_endpoints`... Each has a blocking class (for
`Mittis`) and an awaitable twin (for `AsyncMittis`) with the same signatures; a test holds them equal.

Arguments left as None are not sent. Every POST takes `idempotency_key`; without one, a key is made for the call
and reused by its retries.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal, Optional, Sequence, Union

from mittis_sdk._core import as_model, content
from mittis_sdk.models import (
    Balance, CallbackSecret, DeletedWebhookEndpoint, Event, EventRedelivery, Export, LedgerEntry, Message,
    MessagePreview, OptOut, PriceTable, Usage, WebhookDeliveryAttempt, WebhookEndpoint, WebhookRecovery,
)

if TYPE_CHECKING:
    from mittis_sdk._client import AsyncMittis, AsyncPager, Mittis, SyncPage

Time = Union[datetime, str]  # an aware datetime, or ISO 8601 text as the API takes it


class _Resource:
    def __init__(self, client: "Mittis") -> None:
        self._client = client


class _AsyncResource:
    def __init__(self, client: "AsyncMittis") -> None:
        self._client = client


# --- messages ---------------------------------------------------------------------------------------------
class Messages(_Resource):
    def create(self, *, from_: str, to: str, body: str, metadata: Optional[dict[str, str]] = None,
               status_callback: Optional[str] = None, send_at: Optional[Time] = None,
               validity_period: Optional[int] = None, idempotency_key: Optional[str] = None) -> Message:
        """Send a message: `from_` one of your senders, `to` an E.164 number. Answers once it is queued (or
        scheduled, with `send_at`); its webhooks follow."""
        return self._client._call("messages_create", as_model(Message), idempotency_key=idempotency_key,
                                  body=dict(from_=from_, to=to, body=body, metadata=metadata,
                                            status_callback=status_callback, send_at=send_at,
                                            validity_period=validity_period))

    def preview(self, *, from_: str, to: str, body: str, metadata: Optional[dict[str, str]] = None,
                status_callback: Optional[str] = None, send_at: Optional[Time] = None,
                validity_period: Optional[int] = None) -> MessagePreview:
        """What sending this would do (encoding, segments, price), without sending or charging."""
        return self._client._call("messages_preview", as_model(MessagePreview),
                                  body=dict(from_=from_, to=to, body=body, metadata=metadata,
                                            status_callback=status_callback, send_at=send_at,
                                            validity_period=validity_period))

    def retrieve(self, id: str) -> Message:
        return self._client._call("messages_retrieve", as_model(Message), id=id)

    def list(self, *, status: Optional[str] = None, to: Optional[str] = None, from_: Optional[str] = None,
             direction: Optional[str] = None, created_gte: Optional[Time] = None,
             created_lt: Optional[Time] = None, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "SyncPage[Message]":
        """Newest first. Iterate the answer to walk every page."""
        return self._client._list("messages_list", Message, params=dict(
            status=status, to=to, from_=from_, direction=direction, created_gte=created_gte, created_lt=created_lt,
            limit=limit, starting_after=starting_after, ending_before=ending_before))

    def list_events(self, id: str) -> "SyncPage[Event]":
        """The message's timeline, oldest first by `sequence`."""
        return self._client._list("messages_events", Event, id=id, params={})

    def cancel(self, id: str, *, idempotency_key: Optional[str] = None) -> Message:
        """Cancel a scheduled message (refunded)."""
        return self._client._call("messages_cancel", as_model(Message), id=id, idempotency_key=idempotency_key)

    def redact(self, id: str, *, idempotency_key: Optional[str] = None) -> Message:
        """Remove a final message's body, everywhere it is kept."""
        return self._client._call("messages_redact", as_model(Message), id=id, idempotency_key=idempotency_key)


class AsyncMessages(_AsyncResource):
    async def create(self, *, from_: str, to: str, body: str, metadata: Optional[dict[str, str]] = None,
                     status_callback: Optional[str] = None, send_at: Optional[Time] = None,
                     validity_period: Optional[int] = None, idempotency_key: Optional[str] = None) -> Message:
        return await self._client._call("messages_create", as_model(Message), idempotency_key=idempotency_key,
                                         body=dict(from_=from_, to=to, body=body, metadata=metadata,
                                                   status_callback=status_callback, send_at=send_at,
                                                   validity_period=validity_period))

    async def preview(self, *, from_: str, to: str, body: str, metadata: Optional[dict[str, str]] = None,
                      status_callback: Optional[str] = None, send_at: Optional[Time] = None,
                      validity_period: Optional[int] = None) -> MessagePreview:
        return await self._client._call("messages_preview", as_model(MessagePreview),
                                         body=dict(from_=from_, to=to, body=body, metadata=metadata,
                                                   status_callback=status_callback, send_at=send_at,
                                                   validity_period=validity_period))

    async def retrieve(self, id: str) -> Message:
        return await self._client._call("messages_retrieve", as_model(Message), id=id)

    def list(self, *, status: Optional[str] = None, to: Optional[str] = None, from_: Optional[str] = None,
             direction: Optional[str] = None, created_gte: Optional[Time] = None,
             created_lt: Optional[Time] = None, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "AsyncPager[Message]":
        return self._client._list("messages_list", Message, params=dict(
            status=status, to=to, from_=from_, direction=direction, created_gte=created_gte, created_lt=created_lt,
            limit=limit, starting_after=starting_after, ending_before=ending_before))

    def list_events(self, id: str) -> "AsyncPager[Event]":
        return self._client._list("messages_events", Event, id=id, params={})

    async def cancel(self, id: str, *, idempotency_key: Optional[str] = None) -> Message:
        return await self._client._call("messages_cancel", as_model(Message), id=id,
                                         idempotency_key=idempotency_key)

    async def redact(self, id: str, *, idempotency_key: Optional[str] = None) -> Message:
        return await self._client._call("messages_redact", as_model(Message), id=id,
                                         idempotency_key=idempotency_key)


# --- events -----------------------------------------------------------------------------------------------
class Events(_Resource):
    def list(self, *, type: Optional[str] = None, created_gte: Optional[Time] = None,
             created_lt: Optional[Time] = None, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "SyncPage[Event]":
        """Newest first; `ending_before=<evt_id>` walks towards newer events, oldest first."""
        return self._client._list("events_list", Event, params=dict(
            type=type, created_gte=created_gte, created_lt=created_lt, limit=limit, starting_after=starting_after,
            ending_before=ending_before))

    def retrieve(self, id: str) -> Event:
        return self._client._call("events_retrieve", as_model(Event), id=id)

    def redeliver(self, id: str, *, endpoint: Optional[str] = None,
                  idempotency_key: Optional[str] = None) -> EventRedelivery:
        """Send the event again: to every subscribed endpoint, or to `endpoint` (`we_…`)."""
        return self._client._call("events_redeliver", as_model(EventRedelivery), id=id,
                                  body=dict(endpoint=endpoint), idempotency_key=idempotency_key)


class AsyncEvents(_AsyncResource):
    def list(self, *, type: Optional[str] = None, created_gte: Optional[Time] = None,
             created_lt: Optional[Time] = None, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "AsyncPager[Event]":
        return self._client._list("events_list", Event, params=dict(
            type=type, created_gte=created_gte, created_lt=created_lt, limit=limit, starting_after=starting_after,
            ending_before=ending_before))

    async def retrieve(self, id: str) -> Event:
        return await self._client._call("events_retrieve", as_model(Event), id=id)

    async def redeliver(self, id: str, *, endpoint: Optional[str] = None,
                        idempotency_key: Optional[str] = None) -> EventRedelivery:
        return await self._client._call("events_redeliver", as_model(EventRedelivery), id=id,
                                         body=dict(endpoint=endpoint), idempotency_key=idempotency_key)


# --- webhook endpoints --------------------------------------------------------------------------------------
class WebhookEndpoints(_Resource):
    def create(self, *, url: str, enabled_events: Optional[Sequence[str]] = None, description: Optional[str] = None,
               api_version: Optional[str] = None, idempotency_key: Optional[str] = None) -> WebhookEndpoint:
        """A new endpoint; its `secret` is in this answer only."""
        return self._client._call("webhook_endpoints_create", as_model(WebhookEndpoint),
                                  idempotency_key=idempotency_key, body=dict(
                                      url=url, enabled_events=enabled_events, description=description,
                                      api_version=api_version))

    def retrieve(self, id: str) -> WebhookEndpoint:
        return self._client._call("webhook_endpoints_retrieve", as_model(WebhookEndpoint), id=id)

    def update(self, id: str, *, url: Optional[str] = None, enabled_events: Optional[Sequence[str]] = None,
               description: Optional[str] = None, status: Optional[Literal["enabled", "disabled"]] = None,
               api_version: Optional[str] = None) -> WebhookEndpoint:
        return self._client._call("webhook_endpoints_update", as_model(WebhookEndpoint), id=id, body=dict(
            url=url, enabled_events=enabled_events, description=description, status=status, api_version=api_version))

    def delete(self, id: str) -> DeletedWebhookEndpoint:
        return self._client._call("webhook_endpoints_delete", as_model(DeletedWebhookEndpoint), id=id)

    def list(self, *, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "SyncPage[WebhookEndpoint]":
        return self._client._list("webhook_endpoints_list", WebhookEndpoint, params=dict(
            limit=limit, starting_after=starting_after, ending_before=ending_before))

    def rotate_secret(self, id: str, *, idempotency_key: Optional[str] = None) -> WebhookEndpoint:
        """A new secret, in this answer only; the old one keeps signing beside it for 24 hours."""
        return self._client._call("webhook_endpoints_rotate_secret", as_model(WebhookEndpoint), id=id,
                                  idempotency_key=idempotency_key)

    def list_deliveries(self, id: str, *, limit: Optional[int] = None, starting_after: Optional[str] = None,
                        ending_before: Optional[str] = None) -> "SyncPage[WebhookDeliveryAttempt]":
        """Every request made to the endpoint, newest first."""
        return self._client._list("webhook_endpoints_deliveries", WebhookDeliveryAttempt, id=id, params=dict(
            limit=limit, starting_after=starting_after, ending_before=ending_before))

    def recover(self, id: str, *, since: Time, until: Optional[Time] = None,
                idempotency_key: Optional[str] = None) -> WebhookRecovery:
        """Send again, in the background, the window's events this endpoint never accepted."""
        return self._client._call("webhook_endpoints_recover", as_model(WebhookRecovery), id=id,
                                  body=dict(since=since, until=until), idempotency_key=idempotency_key)


class AsyncWebhookEndpoints(_AsyncResource):
    async def create(self, *, url: str, enabled_events: Optional[Sequence[str]] = None,
                     description: Optional[str] = None, api_version: Optional[str] = None,
                     idempotency_key: Optional[str] = None) -> WebhookEndpoint:
        return await self._client._call("webhook_endpoints_create", as_model(WebhookEndpoint),
                                         idempotency_key=idempotency_key, body=dict(
                                             url=url, enabled_events=enabled_events, description=description,
                                             api_version=api_version))

    async def retrieve(self, id: str) -> WebhookEndpoint:
        return await self._client._call("webhook_endpoints_retrieve", as_model(WebhookEndpoint), id=id)

    async def update(self, id: str, *, url: Optional[str] = None, enabled_events: Optional[Sequence[str]] = None,
                     description: Optional[str] = None, status: Optional[Literal["enabled", "disabled"]] = None,
                     api_version: Optional[str] = None) -> WebhookEndpoint:
        return await self._client._call("webhook_endpoints_update", as_model(WebhookEndpoint), id=id, body=dict(
            url=url, enabled_events=enabled_events, description=description, status=status, api_version=api_version))

    async def delete(self, id: str) -> DeletedWebhookEndpoint:
        return await self._client._call("webhook_endpoints_delete", as_model(DeletedWebhookEndpoint), id=id)

    def list(self, *, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "AsyncPager[WebhookEndpoint]":
        return self._client._list("webhook_endpoints_list", WebhookEndpoint, params=dict(
            limit=limit, starting_after=starting_after, ending_before=ending_before))

    async def rotate_secret(self, id: str, *, idempotency_key: Optional[str] = None) -> WebhookEndpoint:
        return await self._client._call("webhook_endpoints_rotate_secret", as_model(WebhookEndpoint), id=id,
                                         idempotency_key=idempotency_key)

    def list_deliveries(self, id: str, *, limit: Optional[int] = None, starting_after: Optional[str] = None,
                        ending_before: Optional[str] = None) -> "AsyncPager[WebhookDeliveryAttempt]":
        return self._client._list("webhook_endpoints_deliveries", WebhookDeliveryAttempt, id=id, params=dict(
            limit=limit, starting_after=starting_after, ending_before=ending_before))

    async def recover(self, id: str, *, since: Time, until: Optional[Time] = None,
                      idempotency_key: Optional[str] = None) -> WebhookRecovery:
        return await self._client._call("webhook_endpoints_recover", as_model(WebhookRecovery), id=id,
                                         body=dict(since=since, until=until), idempotency_key=idempotency_key)


# --- the status_callback secret -----------------------------------------------------------------------------
class CallbackSecrets(_Resource):
    def retrieve(self) -> CallbackSecret:
        """The secret that signs messages' `status_callback` requests."""
        return self._client._call("callback_secret_retrieve", as_model(CallbackSecret))

    def rotate(self, *, idempotency_key: Optional[str] = None) -> CallbackSecret:
        return self._client._call("callback_secret_rotate", as_model(CallbackSecret),
                                  idempotency_key=idempotency_key)


class AsyncCallbackSecrets(_AsyncResource):
    async def retrieve(self) -> CallbackSecret:
        return await self._client._call("callback_secret_retrieve", as_model(CallbackSecret))

    async def rotate(self, *, idempotency_key: Optional[str] = None) -> CallbackSecret:
        return await self._client._call("callback_secret_rotate", as_model(CallbackSecret),
                                         idempotency_key=idempotency_key)


# --- exports ------------------------------------------------------------------------------------------------
class Exports(_Resource):
    def create(self, *, type: Literal["messages", "events"], start: Time, end: Time,
               format: Optional[Literal["csv", "ndjson"]] = None, status: Optional[str] = None,
               direction: Optional[str] = None, event_type: Optional[str] = None, csv_safe: Optional[bool] = None,
               idempotency_key: Optional[str] = None) -> Export:
        """Start an export of `[start, end)`; follow it with `retrieve` until `status` is `succeeded`."""
        return self._client._call("exports_create", as_model(Export), idempotency_key=idempotency_key,
                                  body=dict(type=type, start=start, end=end, format=format, status=status,
                                            direction=direction, event_type=event_type, csv_safe=csv_safe))

    def retrieve(self, id: str) -> Export:
        return self._client._call("exports_retrieve", as_model(Export), id=id)

    def list(self, *, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "SyncPage[Export]":
        return self._client._list("exports_list", Export, params=dict(
            limit=limit, starting_after=starting_after, ending_before=ending_before))

    def download(self, id: str) -> bytes:
        """The finished file's bytes."""
        return self._client._call("exports_download", content, id=id)


class AsyncExports(_AsyncResource):
    async def create(self, *, type: Literal["messages", "events"], start: Time, end: Time,
                     format: Optional[Literal["csv", "ndjson"]] = None, status: Optional[str] = None,
                     direction: Optional[str] = None, event_type: Optional[str] = None,
                     csv_safe: Optional[bool] = None, idempotency_key: Optional[str] = None) -> Export:
        return await self._client._call("exports_create", as_model(Export), idempotency_key=idempotency_key,
                                         body=dict(type=type, start=start, end=end, format=format, status=status,
                                                   direction=direction, event_type=event_type, csv_safe=csv_safe))

    async def retrieve(self, id: str) -> Export:
        return await self._client._call("exports_retrieve", as_model(Export), id=id)

    def list(self, *, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "AsyncPager[Export]":
        return self._client._list("exports_list", Export, params=dict(
            limit=limit, starting_after=starting_after, ending_before=ending_before))

    async def download(self, id: str) -> bytes:
        return await self._client._call("exports_download", content, id=id)


# --- opt-outs, money, usage ---------------------------------------------------------------------------------
class OptOuts(_Resource):
    def list(self, *, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "SyncPage[OptOut]":
        """Numbers that replied STOP to your senders, or that a carrier refused as unsubscribed."""
        return self._client._list("opt_outs_list", OptOut, params=dict(
            limit=limit, starting_after=starting_after, ending_before=ending_before))


class AsyncOptOuts(_AsyncResource):
    def list(self, *, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "AsyncPager[OptOut]":
        return self._client._list("opt_outs_list", OptOut, params=dict(
            limit=limit, starting_after=starting_after, ending_before=ending_before))


class Balances(_Resource):
    def retrieve(self) -> Balance:
        """The prepaid balance of the key's mode."""
        return self._client._call("balance_retrieve", as_model(Balance))


class AsyncBalances(_AsyncResource):
    async def retrieve(self) -> Balance:
        return await self._client._call("balance_retrieve", as_model(Balance))


class Ledger(_Resource):
    def list(self, *, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "SyncPage[LedgerEntry]":
        """Every top-up, charge, refund and adjustment, newest first."""
        return self._client._list("ledger_list", LedgerEntry, params=dict(
            limit=limit, starting_after=starting_after, ending_before=ending_before))


class AsyncLedger(_AsyncResource):
    def list(self, *, limit: Optional[int] = None, starting_after: Optional[str] = None,
             ending_before: Optional[str] = None) -> "AsyncPager[LedgerEntry]":
        return self._client._list("ledger_list", LedgerEntry, params=dict(
            limit=limit, starting_after=starting_after, ending_before=ending_before))


class Pricing(_Resource):
    def retrieve(self) -> PriceTable:
        return self._client._call("pricing_retrieve", as_model(PriceTable))


class AsyncPricing(_AsyncResource):
    async def retrieve(self) -> PriceTable:
        return await self._client._call("pricing_retrieve", as_model(PriceTable))


class UsageReports(_Resource):
    def retrieve(self, *, start: Time, end: Time,
                 group_by: Optional[Literal["day", "country", "status"]] = None) -> Usage:
        """Messages, segments and amounts of `[start, end)`, per group."""
        return self._client._call("usage_retrieve", as_model(Usage),
                                  params=dict(start=start, end=end, group_by=group_by))


class AsyncUsageReports(_AsyncResource):
    async def retrieve(self, *, start: Time, end: Time,
                       group_by: Optional[Literal["day", "country", "status"]] = None) -> Usage:
        return await self._client._call("usage_retrieve", as_model(Usage),
                                         params=dict(start=start, end=end, group_by=group_by))


# --- the sandbox's test helpers (test keys only) --------------------------------------------------------------
class TestInboundMessages(_Resource):
    __test__ = False  # not a pytest test class

    def create(self, *, from_: str, to: str, body: str, idempotency_key: Optional[str] = None) -> Message:
        """A text from `from_` to your sender `to`, arriving as a carrier's would: its `message.inbound` event
        and webhooks, and STOP, START and HELP handled."""
        return self._client._call("test_helpers_inbound_messages_create", as_model(Message),
                                  idempotency_key=idempotency_key, body=dict(from_=from_, to=to, body=body))


class AsyncTestInboundMessages(_AsyncResource):
    __test__ = False  # not a pytest test class

    async def create(self, *, from_: str, to: str, body: str, idempotency_key: Optional[str] = None) -> Message:
        return await self._client._call("test_helpers_inbound_messages_create", as_model(Message),
                                         idempotency_key=idempotency_key, body=dict(from_=from_, to=to, body=body))


class TestMessages(_Resource):
    __test__ = False  # not a pytest test class

    def delivery_report(self, id: str, *, status: Literal["delivered", "undelivered", "failed"],
                        error_code: Optional[str] = None, idempotency_key: Optional[str] = None) -> Message:
        """Settle a sent message as a carrier's delivery report would."""
        return self._client._call("test_helpers_messages_delivery_report", as_model(Message), id=id,
                                  body=dict(status=status, error_code=error_code), idempotency_key=idempotency_key)


class AsyncTestMessages(_AsyncResource):
    __test__ = False  # not a pytest test class

    async def delivery_report(self, id: str, *, status: Literal["delivered", "undelivered", "failed"],
                              error_code: Optional[str] = None, idempotency_key: Optional[str] = None) -> Message:
        return await self._client._call("test_helpers_messages_delivery_report", as_model(Message), id=id,
                                         body=dict(status=status, error_code=error_code),
                                         idempotency_key=idempotency_key)


class TestHelpers(_Resource):
    """The sandbox's helpers: they exist for test keys only (a live key gets `NotFoundError`)."""

    __test__ = False  # not a pytest test class

    def __init__(self, client: "Mittis") -> None:
        super().__init__(client)
        self.inbound_messages = TestInboundMessages(client)
        self.messages = TestMessages(client)


class AsyncTestHelpers(_AsyncResource):
    __test__ = False  # not a pytest test class

    def __init__(self, client: "AsyncMittis") -> None:
        super().__init__(client)
        self.inbound_messages = AsyncTestInboundMessages(client)
        self.messages = AsyncTestMessages(client)
