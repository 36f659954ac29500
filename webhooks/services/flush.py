"""Flushing: an endpoint's deliveries in batches.

An endpoint's deliveries are split into lanes by the message (the event's object) they are about, so one
message's events stay in order while a busy endpoint is delivered to by several workers at once. One flush
task per lane at a time, marked by a Redis key: events committed while a flush runs are picked up by it, so a
busy endpoint costs a task per batch, not per event. A mark expires on its own if a worker dies holding it;
the sweeper covers anything left behind."""

from datetime import datetime, timedelta
import functools
import time

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from mittis.celery import enqueue
from mittis.db import Statement, insert_rows, quoted_table
from mittis.redis import MarkRequest, mark_clear, marks_take
from webhooks import transport
from webhooks.compression import decompress
from webhooks.models import LANE_KEYS, Delivery, DeliveryAttempt, Event, WebhookEndpoint
from webhooks.services.attempts import note_endpoint_health, record_attempt
from webhooks.services.endpoints import signing_secrets
from webhooks.services.payloads import delivery_request


# An endpoint's deliveries are split into lanes by the message (the event's object) they are about, so one
# message's events stay in order while a busy endpoint is delivered to by several workers at once. One
# flush task per lane at a time, marked by a Redis key: events committed while a flush runs are picked up by
# it, so a busy endpoint costs a task per batch, not per event. A mark expires on its own if a worker dies
# holding it; the sweeper covers anything left behind.
# Deliveries claimed (and their successes recorded) together. 500 delivered the pipeline ~30% faster than
# 100 (`make bench`); a run's deadline still hands back what a slow receiver leaves unattempted, and a worker
# dying mid-batch re-sends at most a batch (with the same webhook-id, for the receiver to drop).
FLUSH_BATCH = 500


FLUSH_STOP_AFTER_FAILURES = 3


FLUSH_LEASE_SECONDS = 120


# A run is a time slice, as a dispatcher's is: it ends, well inside the task time limit, and hands over to
# a fresh flush at the back of the queue, so an endpoint's backlog takes turns with sends and other endpoints.
FLUSH_RUN_SECONDS = 2


# A claimed delivery is left alone this long: longer than the HTTP timeout and the bookkeeping.
CLAIM_FOR = timedelta(seconds=60)


def flush_lanes() -> int:
    return settings.MITTIS_WEBHOOK_FLUSH_LANES


def _flush_key(endpoint_id: int, lane: int | str = "") -> str:
    return f"{settings.MITTIS_RATE_LIMIT_PREFIX}:webhooks:flush:{endpoint_id}:{lane}"


def endpoint_flush_request(endpoint_id: int, countdown: float | None = None, *, lanes: list[int] | None = None) -> None:
    """Make sure a flush of each of the endpoint's lanes (or of `lanes`) runs soon; a no-op for a lane whose
    flush is already scheduled or running."""
    marks_take([flush_mark_request(endpoint_id, countdown, lanes=lanes)])


def flush_mark_request(endpoint_id: int, countdown: float | None = None, *,
                       lanes: list[int] | None = None) -> MarkRequest:
    """`endpoint_flush_request` as marks to take, to share a Redis round trip with others (`marks_take`)."""
    lanes = list(range(flush_lanes())) if lanes is None else lanes
    return MarkRequest([_flush_key(endpoint_id, lane) for lane in lanes], FLUSH_LEASE_SECONDS,
                       functools.partial(_flush_start, endpoint_id, lanes, countdown))


def _flush_start(endpoint_id: int, lanes: list[int], countdown: float | None, taken: list[int] | None) -> None:
    # Without the marks (taken is None), flushes may overlap: the row claims keep that safe.
    for lane in lanes if taken is None else [lanes[index] for index in taken]:
        if not enqueue("webhooks.flush_endpoint", args=(endpoint_id, lane), countdown=countdown):
            mark_clear(_flush_key(endpoint_id, lane))  # the sweeper sends its deliveries


def endpoint_flush(*, endpoint_id: int, lane: int = 0) -> int:
    """Deliver one lane of an endpoint's due deliveries oldest first, a batch at a time over one kept-alive
    connection, until none is due or the run's FLUSH_RUN_SECONDS are up. Returns how many succeeded.

    A refused delivery follows its retry schedule and the flush goes on. When the endpoint does not answer
    (timeout, refused connection) or refuses several in a row, it is down: the flush stops and the rest wait
    unattempted, in order, until it answers again, instead of each spending an attempt.
    """
    succeeded = 0
    connection = None
    deadline = time.monotonic() + FLUSH_RUN_SECONDS
    try:
        while time.monotonic() < deadline:
            batch = _claim_due(endpoint_id, lane)
            if not batch:
                break
            if connection is None or connection.url != batch[0].endpoint.url:
                if connection is not None:
                    connection.close()
                connection = transport.Connection(batch[0].endpoint.url, timeout=settings.MITTIS_WEBHOOK_TIMEOUT)
            delivered, stopped = _deliver_batch(batch, connection, deadline)
            succeeded += delivered
            if stopped:
                return succeeded
    finally:
        if connection is not None:
            connection.close()
        mark_clear(_flush_key(endpoint_id, lane))
    # Work left when the run's time was up, or a delivery committed after the last claim but before the
    # mark was cleared (which asked for no flush): a fresh flush takes it.
    if _in_lane(_due(Delivery.objects.filter(endpoint_id=endpoint_id)), lane).exists():
        endpoint_flush_request(endpoint_id, lanes=[lane])
    return succeeded


def _in_lane(deliveries, lane: int):
    lanes = flush_lanes()
    if lanes == 1:
        return deliveries
    # Each lane a range of the keys: a range, unlike `lane_key % lanes`, the planner estimates from the column's
    # statistics, so it reads the pending index in id order and stops at a batch instead of sorting them all.
    return deliveries.filter(lane_key__gte=LANE_KEYS * lane // lanes, lane_key__lt=LANE_KEYS * (lane + 1) // lanes)


def _due(deliveries):
    now = timezone.now()
    return (deliveries.filter(status=Delivery.PENDING, next_attempt_at__lte=now + timedelta(seconds=1))
            .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now)))


def _claim_due(endpoint_id: int, lane: int) -> list[Delivery]:
    """Claim the lane's next batch of due deliveries, oldest first, with their events (id and payload only)."""
    now = timezone.now()
    # One endpoint for the batch, read once and shared by its deliveries, instead of a copy built per row.
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        return []  # deleted since, its deliveries with it
    with transaction.atomic():
        due = _due(Delivery.objects.select_for_update(skip_locked=True, of=("self",)).filter(endpoint_id=endpoint_id))
        due = _in_lane(due, lane).order_by("id").values_list("pk", flat=True)[:FLUSH_BATCH]
        return _claim_in_one_statement(due, endpoint=endpoint, locked_until=now + CLAIM_FOR)


def _claim_in_one_statement(due, *, endpoint: WebhookEndpoint, locked_until: datetime) -> list[Delivery]:
    """The claim as one statement (lock, mark, read with the events' payloads): the ORM's four round trips
    and its model building were a sixth of a flush's time. Only the fields a delivery attempt reads are
    loaded. Precondition: inside the claim's transaction."""
    due_sql, due_params = due.query.sql_with_params()
    deliveries, events = quoted_table(Delivery), quoted_table(Event)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH claimed AS (UPDATE {deliveries} SET locked_until = %s WHERE id IN ({due_sql}) "
            "RETURNING id, event_id, event_created_at, attempts, next_attempt_at, callback_url) "
            "SELECT claimed.id, claimed.event_id, claimed.attempts, claimed.next_attempt_at, claimed.callback_url, "
            f"event.public_id, event.payload FROM claimed JOIN {events} event ON event.id = claimed.event_id "
            "AND event.created_at = claimed.event_created_at "  # the event's partition alone
            "ORDER BY claimed.id", [locked_until, *due_params])
        rows = cursor.fetchall()
    return [Delivery(id=id, event=Event(id=event_id, public_id=event_public_id, payload=decompress(payload)),
                     endpoint=endpoint, callback_url=callback_url, status=Delivery.PENDING, attempts=attempts,
                     next_attempt_at=next_attempt_at, locked_until=locked_until)
            for id, event_id, attempts, next_attempt_at, callback_url, event_public_id, payload in rows]


def _deliver_batch(batch: list[Delivery], connection: transport.Connection,
                   deadline: float = float("inf")) -> tuple[int, bool]:
    """Post a claimed batch in order, until the run's `deadline` (a slow receiver would otherwise keep a
    worker for a batch's worth of its latency); record the successes together. Returns (succeeded, stopped)."""
    endpoint = batch[0].endpoint
    if endpoint.status != WebhookEndpoint.ENABLED:
        Delivery.objects.filter(pk__in=[d.pk for d in batch]).update(status=Delivery.FAILED, locked_until=None)
        return 0, True
    secrets = signing_secrets(endpoint)
    done: list[tuple[Delivery, transport.HttpResult, datetime]] = []
    stopped, failures_in_a_row = False, 0
    for index, delivery in enumerate(batch):
        if index and time.monotonic() >= deadline:  # the rest go back, unattempted, for the next run
            Delivery.objects.filter(pk__in=[d.pk for d in batch[index:]]).update(locked_until=None)
            break
        attempted_at = timezone.now()
        body, headers = delivery_request(payload=delivery.event.payload, version=endpoint.api_version, secrets=secrets,
                                         event_id=delivery.event.public_id)
        result = connection.post(body=body, headers=headers)
        if result.status is not None and 200 <= result.status < 300:
            done.append((delivery, result, attempted_at))
            failures_in_a_row = 0
            continue
        _record_successes(endpoint, done)
        done = []
        record_attempt(delivery, result, attempted_at=attempted_at)  # schedules its own retry
        failures_in_a_row += 1
        # One refused event follows its retry schedule while the rest go on; an endpoint that does not
        # answer at all, or refuses several in a row, is down: the rest wait for it, unattempted.
        if result.status is None or failures_in_a_row >= FLUSH_STOP_AFTER_FAILURES:
            Delivery.objects.filter(pk__in=[d.pk for d in batch[index + 1:]]).update(locked_until=None)
            stopped = True
            break
    _record_successes(endpoint, done)
    return sum(1 for d in batch if d.status == Delivery.SUCCEEDED), stopped


def _record_successes(endpoint: WebhookEndpoint, done: list) -> None:
    if not done:
        return
    now = timezone.now()
    attempts = [DeliveryAttempt(delivery=delivery, endpoint=endpoint, number=delivery.attempts + 1, url=endpoint.url,
                                attempted_at=attempted_at, succeeded=True, response_status=result.status,
                                response_body=result.body[:DeliveryAttempt.RESPONSE_BODY_LIMIT],
                                latency_ms=result.latency_ms)
                for delivery, result, attempted_at in done]
    ids = [delivery.pk for delivery, _, _ in done]
    for delivery, _, _ in done:
        delivery.status = Delivery.SUCCEEDED
    with transaction.atomic():
        statement = Statement()  # the attempts and the deliveries in one statement
        statement.add("attempts", *insert_rows(attempts))
        statement.add("delivered", f"UPDATE {quoted_table(Delivery)} SET status = %s, "
                                   "attempts = attempts + 1, locked_until = NULL, updated_at = %s "
                                   "WHERE id = ANY(%s) RETURNING id", [Delivery.SUCCEEDED, now, ids])
        statement.run("SELECT 1")
        note_endpoint_health(endpoint, succeeded=True, gone=False)
