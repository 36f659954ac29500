"""Celery tasks: each takes ids or plain data, calls a service, and owns only its retry policy."""

from datetime import timedelta
import random

from celery import shared_task

from messaging import services
from messaging.carriers.base import DeliveryReport

# Retry a temporarily failing carrier after about 5 s, 10 s, 20 s, 40 s (capped), with jitter so
# that many messages held up by one outage do not return all at once.
SEND_RETRY_BASE_SECONDS = 5
SEND_RETRY_MAX_SECONDS = 300
# A queued message whose task has not run by then is presumed lost and enqueued again.
STALE_QUEUED_AFTER = timedelta(minutes=2)
# A send claimed this long ago with nothing recorded since was cut off: longer than the send task's hard
# time limit (CELERY_TASK_TIME_LIMIT), so a send still in progress is never taken for dead.
SEND_INTERRUPTED_AFTER = timedelta(minutes=5)


def send_retry_delay(attempt: int) -> float:
    delay = min(SEND_RETRY_BASE_SECONDS * 2 ** (attempt - 1), SEND_RETRY_MAX_SECONDS)
    return delay * random.uniform(0.8, 1.2)


@shared_task(name="messaging.send_message", bind=True, max_retries=None)
def send_message(self, message_id: int, attempt: int = 1) -> None:
    outcome = services.message_send(message_id=message_id, attempt=attempt)
    if outcome.throttled:
        # The sender or carrier is at its rate: run this same attempt when a slot is free, meanwhile
        # the worker takes other work instead of sleeping.
        self.apply_async(kwargs={"message_id": message_id, "attempt": attempt}, countdown=outcome.throttled)
    elif outcome.retry:
        # A new task for the next attempt; the attempt number is the claim that keeps it single.
        self.apply_async(kwargs={"message_id": message_id, "attempt": attempt + 1},
                         countdown=send_retry_delay(attempt))


@shared_task(name="messaging.dispatch")
def dispatch(slot: int = 0) -> int:
    return services.messages_dispatch(slot=slot)


@shared_task(name="messaging.process_delivery_reports")
def process_delivery_reports(carrier: str, reports: list[dict]) -> None:
    services.messages_apply_delivery_reports(carrier=carrier,
                                             reports=[DeliveryReport(**report) for report in reports])


@shared_task(name="messaging.process_delivery_report")
def process_delivery_report(carrier: str, report: dict) -> None:
    services.message_apply_delivery_report(carrier=carrier, report=DeliveryReport(**report))


@shared_task(name="messaging.requeue_stale_messages")
def requeue_stale_messages() -> int:
    return len(services.messages_requeue_stale(older_than=STALE_QUEUED_AFTER))


@shared_task(name="messaging.recover_interrupted_sends")
def recover_interrupted_sends() -> int:
    return len(services.messages_recover_interrupted(older_than=SEND_INTERRUPTED_AFTER))


@shared_task(name="messaging.dispatch_scheduled")
def dispatch_scheduled() -> int:
    return len(services.messages_dispatch_scheduled())


@shared_task(name="messaging.expire_overdue")
def expire_overdue() -> int:
    return len(services.messages_expire_overdue())


@shared_task(name="messaging.close_stuck")
def close_stuck() -> int:
    return len(services.messages_close_stuck())


@shared_task(name="messaging.redact_past_retention")
def redact_past_retention() -> int:
    return services.messages_redact_past_retention()


@shared_task(name="messaging.run_export", acks_late=True)
def run_export(export_id: int) -> None:
    from messaging.exports import export_run

    export_run(export_id=export_id)


@shared_task(name="messaging.delete_expired_exports")
def delete_expired_exports() -> int:
    from messaging.exports import exports_delete_expired

    return exports_delete_expired()
