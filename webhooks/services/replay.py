"""Sending events again: one event on request, an endpoint's failed window (recover), and events' stored payloads
redacted with their object."""

from datetime import datetime
import json

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from mittis.celery import enqueue
from mittis.errors import DomainError
from webhooks.models import Delivery, Event, WebhookEndpoint, lane_key
from webhooks.services.payloads import payload_json
from webhooks.services.publish import schedule


def event_redeliver(*, event: Event, endpoint: WebhookEndpoint | None = None) -> list[Delivery]:
    """Send an event again: to one endpoint, or to every enabled endpoint subscribed to it."""
    if endpoint is not None:
        if endpoint.status != WebhookEndpoint.ENABLED:
            raise DomainError("endpoint_disabled", field="endpoint")
        endpoints = [endpoint]
    else:
        endpoints = [e for e in WebhookEndpoint.objects.filter(
            account_id=event.account_id, livemode=event.livemode, status=WebhookEndpoint.ENABLED)
            if e.subscribes_to(event.type)]
    with transaction.atomic():
        deliveries = Delivery.objects.bulk_create(
            [Delivery(event=event, event_created_at=event.created_at, endpoint=e, next_attempt_at=timezone.now(),
                      lane_key=lane_key(event.object_id)) for e in endpoints])
        schedule(deliveries)
    return deliveries


def endpoint_recover(*, endpoint_id: int, since: datetime, until: datetime) -> int:
    """Send again every event of the window that this endpoint was sent and never accepted.

    Events still being retried are left to their retries; events it did accept are not sent again.
    """
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    if endpoint.status != WebhookEndpoint.ENABLED:
        return 0
    to_endpoint = Delivery.objects.filter(event=OuterRef("pk"), event_created_at=OuterRef("created_at"), endpoint=endpoint)
    events = (Event.objects.filter(account_id=endpoint.account_id, livemode=endpoint.livemode,
                                   created_at__gte=since, created_at__lt=until)
              .filter(Exists(to_endpoint.filter(status=Delivery.FAILED)))
              .exclude(Exists(to_endpoint.filter(status__in=[Delivery.SUCCEEDED, Delivery.PENDING])))
              .order_by("id"))
    recovered = 0
    for event in events.iterator(chunk_size=500):
        with transaction.atomic():
            schedule([Delivery.objects.create(event=event, event_created_at=event.created_at, endpoint=endpoint,
                                               next_attempt_at=timezone.now(), lane_key=lane_key(event.object_id))])
        recovered += 1
    return recovered


def endpoint_recover_request(*, endpoint_id: int, since: datetime, until: datetime) -> None:
    """`endpoint_recover` in the background, once the current transaction commits."""
    transaction.on_commit(lambda: enqueue("webhooks.recover_endpoint",
                                          args=(endpoint_id, since.isoformat(), until.isoformat())))


def events_redact(*, object_id: str, since: datetime, redacted_at: str) -> int:
    """Remove the message body from the stored payloads of an object's events (kept for retries
    and `GET /v1/events`). Called by the redaction of that object; `since`, its creation: none of its events is
    older, so only the months since are read."""
    redacted = []
    for event in Event.objects.filter(object_id=object_id, created_at__gte=since).only("pk", "payload"):
        payload = json.loads(event.payload)
        if isinstance(payload.get("data"), dict):
            payload["data"].update(body=None, redacted_at=redacted_at)
            event.payload = payload_json(payload)
            redacted.append(event)
    Event.objects.bulk_update(redacted, ["payload"])
    return len(redacted)
