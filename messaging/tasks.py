"""Celery tasks: each takes ids or plain data and calls a service. Services publish them by name
(`mittis.celery.enqueue`), so no service imports this module."""

from datetime import timedelta

from celery import shared_task

from messaging import services
from messaging.carriers.base import DeliveryReport
from messaging.exports import (
    export_run, export_scrub, exports_delete_expired, exports_resume_stalled, exports_scrub_pending,
)

# A queued message whose task has not run by then is presumed lost and enqueued again.
STALE_QUEUED_AFTER = timedelta(minutes=2)
# A send claimed this long ago with nothing recorded since was cut off: longer than the hard time limit of the
# tasks that send (CELERY_TASK_TIME_LIMIT, 90 s), so a send still in progress is never taken for dead, and short
# enough that a killed worker's claimed batch is settled within minutes (`make load` settles in 5).
SEND_INTERRUPTED_AFTER = timedelta(minutes=2)


@shared_task(name="messaging.send_message")
def send_message(message_id: int, attempt: int = 1) -> None:
    services.message_send(message_id=message_id, attempt=attempt)  # it schedules its own retry or wait


@shared_task(name="messaging.dispatch")
def dispatch(slot: int = 0) -> int:
    return services.messages_dispatch(slot=slot)


@shared_task(name="messaging.process_delivery_reports")
def process_delivery_reports(carrier: str, reports: list[dict]) -> None:
    services.messages_apply_delivery_reports(carrier=carrier,
                                             reports=[DeliveryReport(**report) for report in reports])


@shared_task(name="messaging.requeue_stale_messages")
def requeue_stale_messages() -> int:
    return len(services.messages_requeue_stale(older_than=STALE_QUEUED_AFTER))


@shared_task(name="messaging.recover_interrupted_sends")
def recover_interrupted_sends() -> int:
    return len(services.messages_recover_interrupted(older_than=SEND_INTERRUPTED_AFTER))


@shared_task(name="messaging.recover_lost_reports")
def recover_lost_reports() -> int:
    return len(services.messages_recover_lost_reports())


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
def run_export(export_id: int, after: int = 0) -> None:
    export_run(export_id=export_id, after=after)  # one slice; it enqueues the next


@shared_task(name="messaging.resume_exports")
def resume_exports() -> int:
    return len(exports_resume_stalled())


@shared_task(name="messaging.delete_expired_exports")
def delete_expired_exports() -> int:
    return exports_delete_expired()


@shared_task(name="messaging.scrub_export", acks_late=True)
def scrub_export(export_id: int) -> None:
    export_scrub(export_id=export_id)


@shared_task(name="messaging.scrub_exports")
def scrub_exports() -> int:
    return exports_scrub_pending()
