"""What an attempt to deliver came to, recorded: its row, the delivery's next retry (the contract's schedule,
with jitter, never before the receiver's Retry-After) or its end, and the endpoint's health."""

from datetime import datetime, timedelta
import random

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mittis.celery import MAX_COUNTDOWN, enqueue
from webhooks import transport
from webhooks.models import Delivery, DeliveryAttempt, WebhookEndpoint


# An endpoint that has failed every delivery this long is disabled (and says why).
DISABLE_AFTER_FAILING = timedelta(days=5)


JITTER = 0.1


# A receiver's Retry-After is honoured up to the schedule's longest wait.
MAX_RETRY_AFTER = timedelta(hours=24)



def deliver_enqueue(delivery_id: int, countdown: float | None = None) -> None:
    # With the broker down, the delivery is pending in the database: the sweeper sends it.
    enqueue("webhooks.deliver", args=(delivery_id,), countdown=countdown)



def record_attempt(delivery: Delivery, result: transport.HttpResult, *, attempted_at: datetime) -> DeliveryAttempt:
    number = delivery.attempts + 1
    succeeded = result.status is not None and 200 <= result.status < 300
    schedule = settings.MITTIS_WEBHOOK_RETRY_SCHEDULE
    next_attempt_at = None
    gone = result.status == 410
    if succeeded:
        status = Delivery.SUCCEEDED
    elif gone or number > len(schedule):
        status = Delivery.FAILED
    else:
        status = Delivery.PENDING
        delay = schedule[number - 1] * random.uniform(1 - JITTER, 1 + JITTER)
        if result.retry_after is not None:
            delay = max(delay, min(result.retry_after, MAX_RETRY_AFTER.total_seconds()))
        next_attempt_at = timezone.now() + timedelta(seconds=delay)
    with transaction.atomic():
        attempt = DeliveryAttempt.objects.create(
            delivery=delivery, endpoint=delivery.endpoint, number=number, url=delivery.url,
            attempted_at=attempted_at, succeeded=succeeded, response_status=result.status,
            response_body=result.body[:DeliveryAttempt.RESPONSE_BODY_LIMIT], latency_ms=result.latency_ms,
            error=result.error[:500], next_attempt_at=next_attempt_at)
        Delivery.objects.filter(pk=delivery.pk).update(
            status=status, attempts=number, next_attempt_at=next_attempt_at or delivery.next_attempt_at,
            locked_until=None, updated_at=timezone.now())
        if delivery.endpoint is not None:
            note_endpoint_health(delivery.endpoint, succeeded=succeeded, gone=gone)
        if next_attempt_at is not None:
            countdown = (next_attempt_at - timezone.now()).total_seconds()
            if countdown <= MAX_COUNTDOWN:  # further off, the sweeper sends it when it is due
                transaction.on_commit(lambda: deliver_enqueue(delivery.pk, countdown=max(0.0, countdown)))
    return attempt


def note_endpoint_health(endpoint: WebhookEndpoint, *, succeeded: bool, gone: bool) -> None:
    now = timezone.now()
    endpoints = WebhookEndpoint.objects.filter(pk=endpoint.pk)
    if succeeded:
        if endpoint.failing_since is not None:  # the common case, a healthy endpoint, writes nothing
            endpoints.update(failing_since=None)
    elif gone:
        endpoints.update(status=WebhookEndpoint.DISABLED, disabled_reason="The endpoint answered 410 Gone.",
                         updated_at=now)
    else:
        endpoints.filter(failing_since=None).update(failing_since=now)
        endpoints.filter(failing_since__lte=now - DISABLE_AFTER_FAILING, status=WebhookEndpoint.ENABLED).update(
            status=WebhookEndpoint.DISABLED, updated_at=now,
            disabled_reason=f"Every delivery failed for {DISABLE_AFTER_FAILING.days} days.")
