"""Reads for webhooks, always scoped to one account and mode."""

from django.db.models import QuerySet

from mittis.accounts.models import Account
from mittis.errors import DomainError
from webhooks.models import DeliveryAttempt, Event, WebhookEndpoint


def endpoint_scope(*, account: Account, livemode: bool) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(account=account, livemode=livemode)


def endpoint_get(*, account: Account, livemode: bool, public_id: str, field: str | None = None) -> WebhookEndpoint:
    endpoint = endpoint_scope(account=account, livemode=livemode).filter(public_id=public_id).first()
    if endpoint is None:
        raise DomainError("resource_missing", f"No such webhook endpoint: '{public_id}'.", field=field)
    return endpoint


def event_scope(*, account: Account, livemode: bool, type: str | None = None, created_gte=None,
                created_lt=None) -> QuerySet[Event]:
    events = Event.objects.filter(account=account, livemode=livemode)
    if type:
        events = events.filter(type=type)
    if created_gte:
        events = events.filter(created_at__gte=created_gte)
    if created_lt:
        events = events.filter(created_at__lt=created_lt)
    return events


def event_get(*, account: Account, livemode: bool, public_id: str) -> Event:
    event = event_scope(account=account, livemode=livemode).filter(public_id=public_id).first()
    if event is None:
        raise DomainError("resource_missing", f"No such event: '{public_id}'.")
    return event


def attempt_scope(*, endpoint: WebhookEndpoint) -> QuerySet[DeliveryAttempt]:
    return DeliveryAttempt.objects.filter(endpoint=endpoint).select_related("delivery__event")
