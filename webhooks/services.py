"""Writes for webhooks: endpoints and their secrets, publishing events, delivering and redelivering them."""

from dataclasses import dataclass
from datetime import datetime, timedelta
import functools
import json
import logging
import random
import time

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from mittis import crypto
from mittis.accounts.models import Account
from mittis.celery import MAX_COUNTDOWN, enqueue
from mittis.db import Statement, insert_rows, insert_select, quoted_table
from mittis.errors import DomainError
from mittis.redis import MarkRequest, mark_clear, marks_take
from webhooks import signing, transport
from webhooks.models import (LANE_KEYS, CallbackSecret, Delivery, DeliveryAttempt, Event, WebhookEndpoint,
                             lane_key)

logger = logging.getLogger(__name__)

# After a rotation the old secret signs beside the new one this long, so receivers can switch over.
ROTATION_OVERLAP = timedelta(hours=24)
# An endpoint that has failed every delivery this long is disabled (and says why).
DISABLE_AFTER_FAILING = timedelta(days=5)
# A claimed delivery is left alone this long: longer than the HTTP timeout and the bookkeeping.
CLAIM_FOR = timedelta(seconds=60)
JITTER = 0.1
# A receiver's Retry-After is honoured up to the schedule's longest wait.
MAX_RETRY_AFTER = timedelta(hours=24)


# --- Endpoints --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str  # shown to the customer once, now


def endpoint_create(*, account: Account, livemode: bool, url: str, description: str = "",
                    enabled_events: list[str]) -> EndpointWithSecret:
    _check_url(url, livemode=livemode, field="url")
    secret = signing.secret_generate()
    endpoint = WebhookEndpoint.objects.create(
        account=account, livemode=livemode, url=url, description=description, enabled_events=enabled_events,
        secret_encrypted=crypto.encrypt(secret))
    return EndpointWithSecret(endpoint, secret)


def endpoint_update(*, endpoint: WebhookEndpoint, **changes) -> WebhookEndpoint:
    """Change url, description, enabled_events or status. Re-enabling forgets past failures."""
    if "url" in changes:
        _check_url(changes["url"], livemode=endpoint.livemode, field="url")
    if changes.get("status") == WebhookEndpoint.ENABLED and endpoint.status != WebhookEndpoint.ENABLED:
        endpoint.failing_since, endpoint.disabled_reason = None, ""
    if changes.get("status") == WebhookEndpoint.DISABLED and endpoint.status != WebhookEndpoint.DISABLED:
        endpoint.disabled_reason = "Disabled through the API."
    for name, value in changes.items():
        setattr(endpoint, name, value)
    endpoint.save()
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> EndpointWithSecret:
    secret = signing.secret_generate()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        _rotate(endpoint, secret)
        endpoint.save(update_fields=["secret_encrypted", "previous_secret_encrypted",
                                     "previous_secret_expires_at", "updated_at"])
    return EndpointWithSecret(endpoint, secret)


def _rotate(holder, secret: str) -> None:
    holder.previous_secret_encrypted = holder.secret_encrypted
    holder.previous_secret_expires_at = timezone.now() + ROTATION_OVERLAP
    holder.secret_encrypted = crypto.encrypt(secret)


def signing_secrets(holder: WebhookEndpoint | CallbackSecret) -> list[str]:
    """The current secret, and the previous one while its overlap lasts."""
    found = [crypto.decrypt(holder.secret_encrypted)]
    if holder.previous_secret_encrypted and holder.previous_secret_expires_at and \
            holder.previous_secret_expires_at > timezone.now():
        found.append(crypto.decrypt(holder.previous_secret_encrypted))
    return found


def _check_url(url: str, *, livemode: bool, field: str) -> None:
    try:
        transport.check_url(url, livemode=livemode)
    except transport.UnsafeUrl as refused:
        raise DomainError("url_invalid", str(refused), field=field)


def callback_url_check(*, url: str, livemode: bool) -> None:
    """For a message's `status_callback`: the same rules as an endpoint's URL."""
    _check_url(url, livemode=livemode, field="status_callback")


def callback_secret_get(*, account_id: int, livemode: bool) -> CallbackSecret:
    secret, _ = CallbackSecret.objects.get_or_create(
        account_id=account_id, livemode=livemode,
        defaults={"secret_encrypted": crypto.encrypt(signing.secret_generate())})
    return secret


def callback_secret_rotate(*, account_id: int, livemode: bool) -> str:
    secret = signing.secret_generate()
    with transaction.atomic():
        holder = callback_secret_get(account_id=account_id, livemode=livemode)
        holder = CallbackSecret.objects.select_for_update().get(pk=holder.pk)
        _rotate(holder, secret)
        holder.rotated_at = timezone.now()
        holder.save()
    return secret


# --- Publishing -------------------------------------------------------------------------------
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


def events_publish(statement: Statement, events: list[NewEvent], *, only_if: str = "") -> None:
    """Add the events and their deliveries to `statement`; `only_if`, an SQL condition, writes them only
    when it holds (a send's statement publishes its event only if the message was written). After running
    the statement, pass `published_deliveries(statement)`'s two columns to `deliveries_scheduled`."""
    statement.add("event", *insert_rows([_event_row(new) for new in events], returning=_EVENT_RETURNING,
                                        where=only_if))
    now = timezone.now()
    # Each delivery's lane by the one rule (`lane_key`), joined in by event: a message's events share a lane.
    lanes = {new.event_id: lane_key(new.object_id) for new in events}
    endpoints = quoted_table(WebhookEndpoint)
    statement.add("endpoint_deliveries", *insert_select(
        Delivery(next_attempt_at=now),
        sql_values={"event_id": "event.id", "endpoint_id": "endpoint.id", "lane_key": "lane.key"},
        source=f"event JOIN {endpoints} endpoint "
               "ON endpoint.account_id = event.account_id AND endpoint.livemode = event.livemode "
               "JOIN unnest(%s::varchar[], %s::integer[]) AS lane (event_id, key) ON lane.event_id = event.public_id",
        source_params=[list(lanes), list(lanes.values())],
        returning="id, endpoint_id",
        # `WebhookEndpoint.subscribes_to`, in SQL
        where="endpoint.status = %s AND (endpoint.enabled_events @> %s::jsonb "
              "OR endpoint.enabled_events @> jsonb_build_array(event.type))",
        where_params=[WebhookEndpoint.ENABLED, json.dumps([WebhookEndpoint.ALL_EVENTS])]))
    callbacks = [(new.event_id, new.callback_url) for new in events if new.callback_url]
    if callbacks:
        statement.add("callback_deliveries", *insert_select(
            Delivery(next_attempt_at=now),
            sql_values={"event_id": "event.id", "callback_url": "callback.url"},
            source="event JOIN unnest(%s::varchar[], %s::varchar[]) AS callback (event_id, url) "
                   "ON callback.event_id = event.public_id",
            source_params=[[event_id for event_id, _ in callbacks], [url for _, url in callbacks]]))


def _payload(event_id: str, type: str, created_at: datetime, livemode: bool, sequence: int, data: dict) -> str:
    return json.dumps({
        "object": "event", "id": event_id, "type": type, "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "livemode": livemode, "sequence": sequence, "data": data,
    }, separators=(",", ":"), ensure_ascii=False)


_EVENT_RETURNING = "id, public_id, account_id, livemode, type, object_id"


def _event_row(new: NewEvent) -> Event:
    return Event(public_id=new.event_id, account_id=new.account_id, livemode=new.livemode, type=new.type,
                 object_id=new.object_id, sequence=new.sequence, created_at=new.created_at,
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


def _schedule(deliveries: list[Delivery]) -> None:
    _schedule_ids(sorted({delivery.endpoint_id for delivery in deliveries if delivery.endpoint_id}),
                  [delivery.pk for delivery in deliveries if delivery.endpoint_id is None])


def _schedule_ids(endpoint_ids: list[int], callbacks: list[int], *, also: list[MarkRequest] = ()) -> None:
    """After commit: an endpoint's deliveries go out in its batched flush, a callback URL's one by one."""
    marks = [*also, *(flush_mark_request(endpoint_id) for endpoint_id in endpoint_ids)]
    if marks or callbacks:
        transaction.on_commit(lambda: [marks_take(marks)] + [_enqueue(pk) for pk in callbacks])


def _enqueue(delivery_id: int, countdown: float | None = None) -> None:
    # With the broker down, the delivery is pending in the database: the sweeper sends it.
    enqueue("webhooks.deliver", args=(delivery_id,), countdown=countdown)


# --- Flushing: an endpoint's deliveries in batches --------------------------------------------
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
            "RETURNING id, event_id, attempts, next_attempt_at, callback_url) "
            "SELECT claimed.id, claimed.event_id, claimed.attempts, claimed.next_attempt_at, claimed.callback_url, "
            f"event.public_id, event.payload FROM claimed JOIN {events} event ON event.id = claimed.event_id "
            "ORDER BY claimed.id", [locked_until, *due_params])
        rows = cursor.fetchall()
    return [Delivery(id=id, event=Event(id=event_id, public_id=event_public_id, payload=payload),
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
        headers = signing.headers(secrets=secrets, msg_id=delivery.event.public_id,
                                  timestamp=int(time.time()), body=delivery.event.payload)
        result = connection.post(body=delivery.event.payload.encode(), headers=headers)
        if result.status is not None and 200 <= result.status < 300:
            done.append((delivery, result, attempted_at))
            failures_in_a_row = 0
            continue
        _record_successes(endpoint, done)
        done = []
        _record_attempt(delivery, result, attempted_at=attempted_at)  # schedules its own retry
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
        _note_endpoint_health(endpoint, succeeded=True, gone=False)


# --- Delivering -------------------------------------------------------------------------------
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
    delivery = Delivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if endpoint is not None and endpoint.status != WebhookEndpoint.ENABLED:
        Delivery.objects.filter(pk=delivery_id).update(status=Delivery.FAILED, locked_until=None)
        return None
    holder = endpoint or callback_secret_get(account_id=delivery.event.account_id, livemode=delivery.event.livemode)
    headers = signing.headers(secrets=signing_secrets(holder), msg_id=delivery.event.public_id,
                              timestamp=int(time.time()), body=delivery.event.payload)
    # No transaction is open here: the receiver may take its full timeout.
    result = transport.post(delivery.url, body=delivery.event.payload.encode(), headers=headers,
                            timeout=settings.MITTIS_WEBHOOK_TIMEOUT)
    attempt = _record_attempt(delivery, result, attempted_at=now)
    if attempt.succeeded and endpoint is not None:
        endpoint_flush_request(endpoint.pk)  # it answers again: send what waited behind this delivery
    return attempt


def _record_attempt(delivery: Delivery, result: transport.HttpResult, *, attempted_at: datetime) -> DeliveryAttempt:
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
            _note_endpoint_health(delivery.endpoint, succeeded=succeeded, gone=gone)
        if next_attempt_at is not None:
            countdown = (next_attempt_at - timezone.now()).total_seconds()
            if countdown <= MAX_COUNTDOWN:  # further off, the sweeper sends it when it is due
                transaction.on_commit(lambda: _enqueue(delivery.pk, countdown=max(0.0, countdown)))
    return attempt


def _note_endpoint_health(endpoint: WebhookEndpoint, *, succeeded: bool, gone: bool) -> None:
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
        _enqueue(delivery_id)
    return due


# --- Replaying --------------------------------------------------------------------------------
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
            [Delivery(event=event, endpoint=e, next_attempt_at=timezone.now(), lane_key=lane_key(event.object_id))
             for e in endpoints])
        _schedule(deliveries)
    return deliveries


def endpoint_recover(*, endpoint_id: int, since: datetime, until: datetime) -> int:
    """Send again every event of the window that this endpoint was sent and never accepted.

    Events still being retried are left to their retries; events it did accept are not sent again.
    """
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    if endpoint.status != WebhookEndpoint.ENABLED:
        return 0
    to_endpoint = Delivery.objects.filter(event=OuterRef("pk"), endpoint=endpoint)
    events = (Event.objects.filter(account_id=endpoint.account_id, livemode=endpoint.livemode,
                                   created_at__gte=since, created_at__lt=until)
              .filter(Exists(to_endpoint.filter(status=Delivery.FAILED)))
              .exclude(Exists(to_endpoint.filter(status__in=[Delivery.SUCCEEDED, Delivery.PENDING])))
              .order_by("id"))
    recovered = 0
    for event in events.iterator(chunk_size=500):
        with transaction.atomic():
            _schedule([Delivery.objects.create(event=event, endpoint=endpoint, next_attempt_at=timezone.now(),
                                               lane_key=lane_key(event.object_id))])
        recovered += 1
    return recovered


def endpoint_recover_request(*, endpoint_id: int, since: datetime, until: datetime) -> None:
    """`endpoint_recover` in the background, once the current transaction commits."""
    transaction.on_commit(lambda: enqueue("webhooks.recover_endpoint",
                                          args=(endpoint_id, since.isoformat(), until.isoformat())))


def events_redact(*, object_id: str, redacted_at: str) -> int:
    """Remove the message body from the stored payloads of an object's events (kept for retries
    and `GET /v1/events`). Called by the redaction of that object."""
    redacted = 0
    for event in Event.objects.filter(object_id=object_id):
        payload = json.loads(event.payload)
        if isinstance(payload.get("data"), dict):
            payload["data"].update(body=None, redacted_at=redacted_at)
            event.payload = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            event.save(update_fields=["payload"])
            redacted += 1
    return redacted
