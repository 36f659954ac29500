"""Publishing: every event is written by `events_publish`, as parts of the statement that writes the change it
reports (`mittis.db.Statement`): the event, a delivery per subscribed endpoint and one per callback URL commit
with the change, or not at all. After commit, an endpoint's deliveries go out in its flush, a callback URL's
one by one."""

from dataclasses import dataclass
from datetime import datetime
import json

from django.db import transaction
from django.utils import timezone

from mittis.db import Statement, insert_rows, insert_select, quoted_table, rows_source
from mittis.redis import MarkRequest, marks_take
from webhooks.models import Delivery, Event, WebhookEndpoint, lane_key
from webhooks.services.attempts import deliver_enqueue
from webhooks.services.flush import flush_mark_request
from webhooks.services.payloads import payload_json


# Every event is published by `events_publish`, as parts of the statement that writes the change it reports
# (`mittis.db.Statement`): the event, a delivery per subscribed endpoint and one per callback URL commit
# with the change, or not at all.
@dataclass(frozen=True)
class NewEvent:
    account_id: int
    livemode: bool
    event_id: str
    type: str
    object_id: str
    sequence: int
    data: dict
    created_at: datetime
    callback_url: str = ""
    status: str = ""  # the object's, as the event reports it (Event.status)
    carrier_status: str = ""


def events_publish(statement: Statement, events: list[NewEvent], *, only_if: str = "") -> None:
    """Add the events and their deliveries to `statement`; `only_if`, an SQL condition, writes them only
    when it holds (a send's statement publishes its event only if the message was written). After running
    the statement, pass `published_deliveries(statement)`'s two columns to `deliveries_scheduled`."""
    statement.add("event", *insert_rows([_event_row(new) for new in events], returning=_EVENT_RETURNING,
                                        where=only_if))
    now = timezone.now()
    # Each delivery's lane by the one rule (`lane_key`), joined in by event: a message's events share a lane.
    lanes, lanes_params = rows_source("lane", [("event_id", "varchar"), ("key", "integer")],
                                      [(new.event_id, lane_key(new.object_id)) for new in events])
    endpoints = quoted_table(WebhookEndpoint)
    statement.add("endpoint_deliveries", *insert_select(
        Delivery(next_attempt_at=now),
        sql_values={"event_id": "event.id", "event_created_at": "event.created_at", "endpoint_id": "endpoint.id",
                    "lane_key": "lane.key"},
        source=f"event JOIN {endpoints} endpoint "
               "ON endpoint.account_id = event.account_id AND endpoint.livemode = event.livemode "
               f"JOIN {lanes} ON lane.event_id = event.public_id",
        source_params=lanes_params,
        returning="id, endpoint_id",
        # `WebhookEndpoint.subscribes_to`, in SQL
        where="endpoint.status = %s AND (endpoint.enabled_events @> %s::jsonb "
              "OR endpoint.enabled_events @> jsonb_build_array(event.type))",
        where_params=[WebhookEndpoint.ENABLED, json.dumps([WebhookEndpoint.ALL_EVENTS])]))
    callbacks = [(new.event_id, new.callback_url) for new in events if new.callback_url]
    if callbacks:
        urls, urls_params = rows_source("callback", [("event_id", "varchar"), ("url", "varchar")], callbacks)
        statement.add("callback_deliveries", *insert_select(
            Delivery(next_attempt_at=now),
            sql_values={"event_id": "event.id", "event_created_at": "event.created_at", "callback_url": "callback.url"},
            source=f"event JOIN {urls} ON callback.event_id = event.public_id", source_params=urls_params))


def _payload(event_id: str, type: str, created_at: datetime, livemode: bool, sequence: int, data: dict) -> str:
    return payload_json({
        "object": "event", "id": event_id, "type": type, "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "livemode": livemode, "sequence": sequence, "data": data,
    })


_EVENT_RETURNING = "id, public_id, account_id, livemode, type, object_id, created_at"


def _event_row(new: NewEvent) -> Event:
    return Event(public_id=new.event_id, account_id=new.account_id, livemode=new.livemode, type=new.type,
                 object_id=new.object_id, sequence=new.sequence, created_at=new.created_at,
                 status=new.status, carrier_status=new.carrier_status,
                 payload=_payload(new.event_id, new.type, new.created_at, new.livemode, new.sequence, new.data))


def published_deliveries(statement: Statement) -> str:
    """Two columns for the final SELECT of a statement with `events_publish`: the arguments of
    `deliveries_scheduled`."""
    callbacks = "ARRAY(SELECT id FROM callback_deliveries)" if any(
        name == "callback_deliveries" for name, _, _ in statement.parts) else "ARRAY[]::bigint[]"
    return f"ARRAY(SELECT DISTINCT endpoint_id FROM endpoint_deliveries), {callbacks}"


def deliveries_scheduled(endpoint_ids: list[int], callbacks: list[int], *, also: list[MarkRequest] = ()) -> None:
    """`also`: other marks to take after commit in the same Redis round trip as the flushes' (a send's
    dispatcher)."""
    _schedule_ids(sorted(endpoint_ids), callbacks, also=also)


def schedule(deliveries: list[Delivery]) -> None:
    _schedule_ids(sorted({delivery.endpoint_id for delivery in deliveries if delivery.endpoint_id}),
                  [delivery.pk for delivery in deliveries if delivery.endpoint_id is None])


def _schedule_ids(endpoint_ids: list[int], callbacks: list[int], *, also: list[MarkRequest] = ()) -> None:
    """After commit: an endpoint's deliveries go out in its batched flush, a callback URL's one by one."""
    marks = [*also, *(flush_mark_request(endpoint_id) for endpoint_id in endpoint_ids)]
    if marks or callbacks:
        transaction.on_commit(lambda: [marks_take(marks)] + [deliver_enqueue(pk) for pk in callbacks])
