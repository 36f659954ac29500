"""One delivery at a time: retries and `status_callback` URLs (an endpoint's deliveries go out in its flush),
and the sweep that sends what a lost task left pending."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from webhooks import transport
from webhooks.models import Delivery, DeliveryAttempt, WebhookEndpoint
from webhooks.services.attempts import deliver_enqueue, record_attempt
from webhooks.services.endpoints import callback_secret_get, signing_secrets
from webhooks.services.flush import CLAIM_FOR, endpoint_flush_request
from webhooks.services.payloads import delivery_request


def delivery_attempt(*, delivery_id: int) -> DeliveryAttempt | None:
    """Make the next attempt of a pending, due delivery, once. None when there is nothing to do
    (already delivered, not yet due, or another run holds it)."""
    now = timezone.now()
    claimed = (Delivery.objects
               .filter(pk=delivery_id, status=Delivery.PENDING, next_attempt_at__lte=now + timedelta(seconds=1))
               .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
               .update(locked_until=now + CLAIM_FOR))
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("event__account", "endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if endpoint is not None and endpoint.status != WebhookEndpoint.ENABLED:
        Delivery.objects.filter(pk=delivery_id).update(status=Delivery.FAILED, locked_until=None)
        return None
    holder = endpoint or callback_secret_get(account_id=delivery.event.account_id, livemode=delivery.event.livemode)
    body, headers = delivery_request(payload=delivery.event.payload, secrets=signing_secrets(holder),
                                     version=(endpoint or delivery.event.account).api_version,
                                     event_id=delivery.event.public_id)
    # No transaction is open here: the receiver may take its full timeout.
    result = transport.post(delivery.url, body=body, headers=headers, timeout=settings.MITTIS_WEBHOOK_TIMEOUT)
    attempt = record_attempt(delivery, result, attempted_at=now)
    if attempt.succeeded and endpoint is not None:
        endpoint_flush_request(endpoint.pk)  # it answers again: send what waited behind this delivery
    return attempt


def deliveries_sweep(*, overdue_by: timedelta = timedelta(seconds=30), limit: int = 1000) -> list[int]:
    """Enqueue pending deliveries that are due but whose task never ran (broker down, worker killed,
    or a retry too far off for a countdown). Harmless when the task is merely late: the claim
    lets only one run make the attempt."""
    now = timezone.now()
    due = list(Delivery.objects
               .filter(status=Delivery.PENDING, next_attempt_at__lte=now - overdue_by)
               .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
               .order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    for delivery_id in due:
        deliver_enqueue(delivery_id)
    return due
