"""`make bench --preload N`: a realistic history of N messages written by SQL (INSERT ... SELECT over
generate_series), so that the bench measures a grown database instead of an empty one.

Thirteen months of messages in a few accounts (the bench's holding most), every status, and every row a
message leaves behind as the API and the workers write them: its events (both tables, one `evt_` id), their
webhook deliveries and delivery attempts, send attempts, carrier reports, inbound messages as received, the
ledger's charges, refunds and top-ups (the balance is their sum), opt-outs, and the idempotency records of
the last day. Each JSON object is built in SQL in the shape `messaging.representation.message_json` builds
(same keys, same order, compact as `payload_json` writes it); tests/test_bench_preload.py holds the two equal.

Rows are written a chunk of messages at a time (CHUNK), in id order, each chunk's related rows after it, so the
tables and their indexes grow as production's do, in time order.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
import json
import secrets
import time

from django.db import connection, transaction
from django.utils import timezone

from billing.models import Balance, LedgerEntry
from billing.selectors import message_quote
from messaging import statuses
from messaging.encoding import analyze
from messaging.errors import MESSAGE_ERRORS
from messaging.models import CarrierInbound, CarrierReport, Message, OptOut, RetentionMark, SendAttempt, Sender
from messaging.representation import MESSAGE_FIELDS, messages_json
from mittis import crypto
from mittis.accounts.models import Account
from mittis.api.models import IdempotencyRecord
from mittis.db import quoted_table
from mittis.ops.preload_sql import sql_id, sql_message_json, sql_status_case, sql_text, sql_when
from mittis.ops.tasks import partitioned_tables
from mittis.partitions import month_of, partitions_create
from webhooks.compression import compress
from webhooks.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint

CHUNK = 1_000_000  # messages per statement: big enough that per-statement costs vanish, small enough to report progress
EVENTS_MESSAGES_AT_ONCE = 20_000  # the events of this many messages in memory at once (about 60 MB)
HISTORY = timedelta(days=395)  # 13 months
# The last day's messages, at least this many (a small preload still has a day of traffic with every status in
# it): the only ones still in flight, and those with idempotency records.
RECENT_MIN = 2_000
# The newest message is this old: a `sent` one is then past the window in which the lost-report sweep asks the
# sandbox about it (1 h), so the sweeps find nothing to do, as in a quiet hour.
NEWEST_AGE = timedelta(hours=2)
# Idempotency records younger than this: the hourly purge (24 h) finds none for a day's bench.
RECORDS_WITHIN = timedelta(hours=20)
RETENTION_DAYS = 30
# Messages older than retention plus this were redacted by earlier nights; the month between is the one that
# falls due (what an account meets when its retention is shortened from 60 to 30 days, or the job was off).
DUE_SPAN = timedelta(days=30)
# The other accounts' shares of the messages (the bench's account holds the rest: 85%).
OTHER_ACCOUNTS = [("Preload: Harbor Dental", 0.10), ("Preload: Northwind Couriers", 0.04),
                  ("Preload: Quill & Co", 0.01)]
TEST_MODE_SHARE = 0.05  # messages sent with a test key: no charge, no webhook to the live endpoint
OPT_OUTS_PER_MESSAGE = 1 / 1000

# Status by bucket (a message's `g * 389 % 1000`: 389 is prime to 1000, so consecutive messages spread evenly).
BUCKETS = [(900, statuses.DELIVERED), (30, statuses.UNDELIVERED), (20, statuses.FAILED), (8, statuses.CANCELED),
           (7, statuses.EXPIRED), (35, statuses.RECEIVED)]
# In the last day, these buckets (out of the delivered ones) are still in flight.
IN_FLIGHT = [(50, statuses.SENT), (30, statuses.QUEUED), (20, statuses.SCHEDULED)]
ERRORS = {statuses.UNDELIVERED: ["unreachable", "unknown_subscriber"],
          statuses.FAILED: ["invalid_phone_number", "carrier_rejected"], statuses.EXPIRED: ["expired"]}
BODIES = [
    "Your technician is 15 minutes out.",
    "Your verification code is 482913. It expires in 10 minutes.",
    "Reminder: your appointment with Dr. Patel is tomorrow at 9:30 AM. Reply C to confirm or R to reschedule.",
    "Your order #A1043 has shipped and arrives Thursday. Track it at https://track.example.com/A1043",
    "Hi Sam, your table for 4 at 7:00 PM is ready. Please check in with the host within 10 minutes or we "
    "may give it to the next party. Thanks for waiting, and enjoy your evening with us!",
    "Payment of $42.10 received. Thank you!",
]
INBOUND_BODIES = ["Yes", "C", "Thanks!", "Can we move it to 3pm?", "STOP"]


@dataclass
class Preloaded:
    messages: int = 0
    seconds: float = 0.0
    accounts: list[int] = field(default_factory=list)
    due: int = 0  # final, unredacted messages past retention: a night's work for the retention job


def history_preload(*, account: Account, messages: int, chunk: int = CHUNK, say=print) -> Preloaded:
    """Write `messages` messages of history, most of them `account`'s, and everything they leave behind.

    Precondition: `account` has a live phone-number sender and may have a live webhook endpoint and a live
    balance (the bench's `_setup`); the database holds no other preload."""
    started = time.monotonic()
    now = timezone.now()
    accounts = [(account, 1 - sum(share for _, share in OTHER_ACCOUNTS))] + [
        (_other_account(name), share) for name, share in OTHER_ACCOUNTS]
    senders = {a.pk: Sender.objects.filter(account=a, kind=Sender.PHONE_NUMBER).values_list("value", flat=True)[0]
               for a, _ in accounts}
    recent = min(messages, max(messages * 24 * 3600 // int(HISTORY.total_seconds()), min(RECENT_MIN, messages // 10)))
    params = {
        "n": messages, "recent": recent, "now": now, "salt": secrets.token_hex(8),
        "start": now - HISTORY, "recent_start": now - timedelta(days=1), "newest": now - NEWEST_AGE,
        "redacted_before": now - timedelta(days=RETENTION_DAYS) - DUE_SPAN,
    }
    Account.objects.filter(pk__in=[a.pk for a, _ in accounts]).update(retention_days=RETENTION_DAYS)
    # Each month of the history its partition, as the daily task had made them while it happened.
    for partitioned in partitioned_tables():
        partitions_create(partitioned, month_of(now - HISTORY), month_of(now))
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE preload_account (n int, account_id bigint, low float8, high float8, "
                       "sender text) ON COMMIT PRESERVE ROWS")
        low = 0.0
        for n, (a, share) in enumerate(accounts):
            cursor.execute("INSERT INTO preload_account VALUES (%s, %s, %s, %s, %s)",
                           [n, a.pk, low, low + share, senders[a.pk]])
            low += share
        written = 0
        for first in range(1, messages + 1, chunk):
            last = min(first + chunk - 1, messages)
            t0 = time.monotonic()
            _chunk(cursor, first, last, params)
            written = last
            say(f"  preload: {written:,} of {messages:,} messages and their rows "
                f"({last - first + 1:,} in {time.monotonic() - t0:.0f} s)")
        cursor.execute("DROP TABLE preload_account")
    # Earlier nights' redaction got this far: its next night starts there (RetentionMark), as in production.
    RetentionMark.objects.bulk_create([RetentionMark(account=a, redacted_before=params["redacted_before"])
                                       for a, _ in accounts], update_conflicts=True, unique_fields=["account"],
                                      update_fields=["redacted_before"])
    _opt_outs(accounts, messages)
    _ledger_close(accounts, now)
    _idempotency_records(account, now)
    due = Message.objects.filter(created_at__lt=now - timedelta(days=RETENTION_DAYS), redacted_at__isnull=True,
                                 status__in=statuses.FINAL).count()
    return Preloaded(messages=messages, seconds=time.monotonic() - started, accounts=[a.pk for a, _ in accounts],
                     due=due)


def _other_account(name: str) -> Account:
    from billing.services import balance_top_up
    from messaging.services import sender_create

    other = Account.objects.create(name=name)
    sender_create(account=other, value=f"+1804555{other.pk % 10000:04d}")
    balance_top_up(account_id=other.pk, livemode=True, amount=Decimal("1000"))
    # Made directly, not by `endpoint_create`: its URL is never called (every delivery is already done).
    WebhookEndpoint.objects.create(account=other, livemode=True, url=f"https://hooks.example.com/mittis/{other.pk}",
                                   enabled_events=["*"], secret_encrypted=crypto.encrypt("whsec_" + secrets.token_hex(24)))
    return other


def _chunk(cursor, first: int, last: int, params: dict) -> None:
    """Messages `first`..`last` of the history, then every row they leave behind."""
    p = {**params, "first": first, "last": last}
    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {quoted_table(Message)}")
    after = cursor.fetchone()[0]
    bodies = [(body, *_encoding(body)) for body in BODIES]
    inbound = [(body, *_encoding(body)) for body in INBOUND_BODIES]
    quotes = {segments: message_quote(country="US", segments=segments) for segments in {s for _, _, s in bodies}}
    status = _bucket_case()
    body_pick = ("CASE WHEN b.status = 'received' THEN (%(inbound)s::text[])[1 + g %% %(inbound_n)s] "
                 "ELSE (%(bodies)s::text[])[1 + g %% %(bodies_n)s] END")
    p |= {"bodies": [b for b, _, _ in bodies], "bodies_n": len(bodies), "inbound": [b for b, _, _ in inbound],
          "inbound_n": len(inbound)}
    encodings = {b: (e, s) for b, e, s in bodies + inbound}
    encoding_case = "CASE body " + " ".join(
        f"WHEN {_literal(b)} THEN '{e}'" for b, (e, _) in encodings.items()) + " END"
    segments_case = "CASE body " + " ".join(
        f"WHEN {_literal(b)} THEN {s}" for b, (_, s) in encodings.items()) + " END"
    price_case = "CASE WHEN direction = 'inbound' THEN 0 " + " ".join(
        f"WHEN segments = {s} THEN {q.amount}" for s, q in quotes.items()) + " END"
    error_case = sql_status_case("status", {st: f"(ARRAY{codes}::text[])[1 + g %% {len(codes)}]"
                                         for st, codes in ERRORS.items()}, "''")
    error_message_case = "CASE error_code " + " ".join(
        f"WHEN '{code}' THEN {_literal(error.message)}" for code, error in MESSAGE_ERRORS.items()) + " ELSE '' END"
    # created_at: the older messages evenly over 13 months less a day, the `recent` newest over the last day.
    cursor.execute(f"""
        INSERT INTO {quoted_table(Message)} (public_id, account_id, livemode, direction, status, from_number, "to", body,
            encoding, segments, country, price, currency, metadata, status_callback, carrier, carrier_message_id,
            send_attempts, dispatch_after, error_code, error_message, event_sequence, send_at, expires_at,
            redacted_at, created_at, updated_at, sent_at, delivered_at, undelivered_at, failed_at, canceled_at,
            expired_at)
        SELECT public_id, account_id, livemode, direction, status, from_number, "to", body, encoding, segments, 'US',
            price, 'USD', metadata, '', carrier, CASE WHEN send_attempts > 0 AND status <> 'failed'
                THEN 'sbx_' || substr(encode(sha256(convert_to(public_id, 'UTF8')), 'hex'), 1, 24)
                WHEN direction = 'inbound' THEN 'inb_' || substr(md5(public_id), 1, 20) ELSE '' END,
            send_attempts, dispatch_after, error_code, {error_message_case}, event_sequence, send_at, expires_at,
            CASE WHEN created_at < %(redacted_before)s AND status IN ('delivered', 'undelivered', 'failed',
                'canceled', 'expired', 'received') THEN date_trunc('day', created_at) + interval '60 days 3 hours'
            END, created_at, coalesce(delivered_at, undelivered_at, failed_at, canceled_at, expired_at, sent_at,
                created_at), sent_at, delivered_at, undelivered_at, failed_at, canceled_at, expired_at
        FROM (
            SELECT *, {price_case} AS price FROM (
                SELECT *, {encoding_case} AS encoding, {segments_case} AS segments, {error_case} AS error_code
                FROM (
                    SELECT b.*, {body_pick} AS body FROM (
                        SELECT g, t.*,
                            CASE WHEN t.status = 'received' THEN t.recipient ELSE a.sender END AS from_number,
                            CASE WHEN t.status = 'received' THEN a.sender ELSE t.recipient END AS "to",
                            CASE WHEN t.status = 'received' THEN 'inbound' ELSE 'outbound' END AS direction,
                            CASE WHEN t.status = 'received' THEN 'sandbox'
                                 WHEN t.status IN ('delivered', 'undelivered', 'sent', 'failed') THEN 'sandbox'
                                 ELSE '' END AS carrier,
                            CASE WHEN t.status IN ('delivered', 'undelivered', 'sent', 'failed') THEN 1 ELSE 0 END
                                AS send_attempts,
                            CASE t.status WHEN 'delivered' THEN 3 WHEN 'undelivered' THEN 3 WHEN 'sent' THEN 2
                                ELSE 1 END + CASE WHEN t.status IN ('failed', 'canceled', 'expired') THEN 1 ELSE 0 END
                                AS event_sequence,
                            CASE WHEN t.status = 'queued' THEN %(now)s + interval '1 day' END AS dispatch_after,
                            CASE WHEN t.status IN ('scheduled', 'canceled')
                                THEN t.created_at + interval '1 day' + (g %% 30) * interval '1 day' END AS send_at,
                            CASE WHEN t.status IN ('scheduled', 'canceled')
                                    THEN t.created_at + interval '1 day 4 hours' + (g %% 30) * interval '1 day'
                                 WHEN t.status = 'queued' THEN t.created_at + interval '2 days'
                                 WHEN t.status = 'received' THEN NULL
                                 ELSE t.created_at + interval '4 hours' END AS expires_at,
                            CASE WHEN t.status IN ('sent', 'delivered', 'undelivered')
                                THEN t.created_at + interval '1.2 seconds' END AS sent_at,
                            CASE WHEN t.status = 'delivered' THEN t.created_at + interval '4.5 seconds' END
                                AS delivered_at,
                            CASE WHEN t.status = 'undelivered' THEN t.created_at + interval '6 seconds' END
                                AS undelivered_at,
                            CASE WHEN t.status = 'failed' THEN t.created_at + interval '0.9 seconds' END AS failed_at,
                            CASE WHEN t.status = 'canceled' THEN t.created_at + interval '2 hours' END AS canceled_at,
                            CASE WHEN t.status = 'expired' THEN t.created_at + interval '4 hours' END AS expired_at
                        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g,
                        LATERAL (
                            SELECT {sql_id('msg', "'m' || g")} AS public_id, a.account_id,
                                (abs(hashtext(g::text)) %% 1000) >= {int(TEST_MODE_SHARE * 1000)} AS livemode,
                                {status} AS status,
                                '+1540' || lpad((200 + (g * 7919) %% 700)::text, 3, '0')
                                    || lpad(((g * 104729) %% 10000)::text, 4, '0') AS recipient,
                                CASE WHEN g > %(n)s - %(recent)s
                                    THEN %(recent_start)s + (%(newest)s - %(recent_start)s)
                                        * ((g - (%(n)s - %(recent)s))::float8 / %(recent)s)
                                    ELSE %(start)s + (%(recent_start)s - %(start)s)
                                        * ((g - 1)::float8 / greatest(%(n)s - %(recent)s, 1)) END AS created_at,
                                CASE WHEN g %% 3 = 0 THEN '{{"ref": "' || 'ord-' || g || '"}}' ELSE '{{}}' END
                                    AS metadata_text
                            FROM preload_account a
                            WHERE a.low <= ((g * 2654435761) %% 1000000) / 1000000.0
                                AND ((g * 2654435761) %% 1000000) / 1000000.0 < a.high
                            LIMIT 1
                        ) AS t
                        JOIN preload_account a ON a.account_id = t.account_id
                    ) AS b
                ) AS c
            ) AS d
        ) AS e
        CROSS JOIN LATERAL (SELECT e.metadata_text::jsonb AS metadata) AS meta
        ORDER BY g
    """, p)
    _related(cursor, after, p)


def _bucket_case() -> str:
    """A message's status from its bucket, `g * 389 % 1000` (in flight only in the last day)."""
    bucket = "((g * 389) %% 1000)"
    whens, low = [], 0
    for size, status in IN_FLIGHT:
        whens.append(f"WHEN g > %(n)s - %(recent)s AND {bucket} < {low + size} THEN '{status}'")
        low += size
    low = 0
    for size, status in BUCKETS:
        whens.append(f"WHEN {bucket} < {low + size} THEN '{status}'")
        low += size
    return "CASE " + " ".join(whens) + " END"


def _encoding(body: str) -> tuple[str, int]:
    info = analyze(body)
    return info.encoding, info.segments


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# Each status's timeline: (sequence, status shown, event type, the time column it happened at, carrier status,
# the `<status>_at` fields shown, whether the attempt is shown).
STEPS = {
    statuses.DELIVERED: [(1, "queued", "created_at", "", ()), (2, "sent", "sent_at", "", ("sent_at",)),
                         (3, "delivered", "delivered_at", "DELIVRD", ("sent_at", "delivered_at"))],
    statuses.UNDELIVERED: [(1, "queued", "created_at", "", ()), (2, "sent", "sent_at", "", ("sent_at",)),
                           (3, "undelivered", "undelivered_at", "UNDELIV", ("sent_at", "undelivered_at"))],
    statuses.SENT: [(1, "queued", "created_at", "", ()), (2, "sent", "sent_at", "", ("sent_at",))],
    statuses.FAILED: [(1, "queued", "created_at", "", ()), (2, "failed", "failed_at", "", ("failed_at",))],
    statuses.EXPIRED: [(1, "queued", "created_at", "", ()), (2, "expired", "expired_at", "", ("expired_at",))],
    statuses.CANCELED: [(1, "scheduled", "created_at", "", ()), (2, "canceled", "canceled_at", "", ("canceled_at",))],
    statuses.QUEUED: [(1, "queued", "created_at", "", ())],
    statuses.SCHEDULED: [(1, "scheduled", "created_at", "", ())],
    statuses.RECEIVED: [(1, "received", "created_at", "", ())],
}


ATTEMPTED = {statuses.DELIVERED, statuses.UNDELIVERED, statuses.SENT, statuses.FAILED}  # a carrier was tried


def _steps_sql() -> str:
    rows = []
    for final, steps in STEPS.items():
        for sequence, shown, at, carrier_status, stamped in steps:
            flags = ", ".join("true" if name in stamped else "false" for name in statuses.TIME_FIELDS)
            rows.append(f"('{final}', {sequence}, '{shown}', '{statuses.EVENT_TYPES[shown]}', '{at}', "
                        f"'{carrier_status}', {sequence > 1 and final in ATTEMPTED}, {flags})")
    names = ", ".join(statuses.TIME_FIELDS)
    return (f"(VALUES {', '.join(rows)}) AS step(final, sequence, status, type, at_column, carrier_status, "
            f"shows_attempt, {names})")


def _related(cursor, after: int, p: dict) -> None:
    """Every row the messages with ids above `after` leave behind."""
    message, attempt = quoted_table(Message), quoted_table(SendAttempt)
    p = {**p, "after": after}
    cursor.execute(f"""
        INSERT INTO {attempt} (message_id, number, carrier, started_at, latency_ms, outcome, carrier_message_id,
            raw_code, error_code, error_message)
        SELECT id, 1, 'sandbox', created_at + interval '0.3 seconds', 40 + id %% 160,
            CASE WHEN status = 'failed' THEN 'rejected' ELSE 'accepted' END, carrier_message_id,
            CASE WHEN status = 'failed' THEN 'REJECTD' ELSE '' END,
            CASE WHEN status = 'failed' THEN error_code ELSE '' END,
            CASE WHEN status = 'failed' THEN error_message ELSE '' END
        FROM {message} WHERE id > %(after)s AND send_attempts > 0 ORDER BY id
    """, p)
    attempts_json = ("'[{\"carrier\":\"sandbox\",\"attempted_at\":' || " + sql_when("a.started_at")
                     + " || ',\"latency_ms\":' || a.latency_ms || ',\"outcome\":' || to_json(a.outcome)::text "
                     "|| ',\"carrier_message_id\":' || " + sql_text("nullif(a.carrier_message_id, '')")
                     + " || ',\"raw_code\":' || " + sql_text("nullif(a.raw_code, '')")
                     + " || ',\"error_code\":' || " + sql_text("nullif(a.error_code, '')") + " || '}]'")
    at_case = "CASE step.at_column " + " ".join(
        f"WHEN '{column}' THEN m.{column}" for column in ["created_at", *statuses.TIME_FIELDS]) + " END"
    data = sql_message_json("m", status="step.status", at=at_case, stamped=lambda name: f"step.{name}", attempts=(
        f"CASE WHEN step.shows_attempt AND a.id IS NOT NULL THEN {attempts_json} ELSE '[]' END"))
    hook_event = quoted_table(Event)
    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {hook_event}")
    after_event = cursor.fetchone()[0]
    events_sql = f"""
        WITH s AS MATERIALIZED (
            SELECT m.id AS message_id, m.account_id, m.livemode, m.public_id AS object_id, m.redacted_at,
                step.sequence, step.type, step.carrier_status,
                {sql_id('evt', "'e' || m.id || '.' || step.sequence")} AS public_id,
                {at_case} AS at,
                step.status, {data} AS data
            FROM (SELECT *, CASE WHEN metadata = '{{}}'::jsonb THEN '{{}}' ELSE
                             '{{"ref":' || to_json(metadata->>'ref')::text || '}}' END AS metadata_text
                  FROM {message} WHERE id > %(low)s AND id <= %(high)s) AS m
            JOIN {_steps_sql()} ON step.final = m.status
            LEFT JOIN {attempt} a ON a.message_id = m.id AND a.number = 1 AND a.started_at >= m.created_at
            ORDER BY m.id, step.sequence
        )
        SELECT public_id, account_id, livemode, type, object_id, sequence,
            '{{"object":"event","id":' || to_json(public_id)::text || ',"type":' || to_json(type)::text
            || ',"created_at":' || {sql_when("at")} || ',"livemode":' || livemode::text || ',"sequence":' || sequence
            || ',"data":' || data || '}}', status, carrier_status, at
        FROM s
    """
    # Compressed as publishing compresses them (webhooks/compression.py), which SQL cannot: each range's events are
    # read, compressed here and copied in, in id order.
    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {message}")
    newest = cursor.fetchone()[0]
    for low in range(after, newest, EVENTS_MESSAGES_AT_ONCE):
        cursor.execute(events_sql, {**p, "low": low, "high": low + EVENTS_MESSAGES_AT_ONCE})
        rows = cursor.fetchall()
        with cursor.cursor.copy(f"COPY {hook_event} (public_id, account_id, livemode, type, object_id, sequence, "
                                "payload, status, carrier_status, created_at) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row[:6], compress(row[6]), *row[7:]))
    delivery, delivery_attempt, endpoint = quoted_table(Delivery), quoted_table(DeliveryAttempt), quoted_table(WebhookEndpoint)
    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {delivery}")
    after_delivery = cursor.fetchone()[0]
    # The receiver took each on the first attempt, as the bench's does (204).
    cursor.execute(f"""
        INSERT INTO {delivery} (event_id, event_created_at, endpoint_id, callback_url, status, attempts, next_attempt_at,
            locked_until, lane_key, created_at, updated_at)
        SELECT e.id, e.created_at, w.id, '', 'succeeded', 1, e.created_at, NULL, ('x' || substr(md5(e.object_id), 1, 7))::bit(28)::int,
            e.created_at, e.created_at + interval '0.2 seconds'
        FROM {hook_event} e JOIN {endpoint} w ON w.account_id = e.account_id AND w.livemode = e.livemode
            AND w.status = 'enabled'
        WHERE e.id > %(after_event)s ORDER BY e.id
    """, {"after_event": after_event})
    cursor.execute(f"""
        INSERT INTO {delivery_attempt} (public_id, delivery_id, endpoint_id, number, url, attempted_at, succeeded,
            response_status, response_body, latency_ms, error, next_attempt_at)
        SELECT {sql_id('whd', "'d' || d.id")}, d.id, d.endpoint_id, 1, w.url, d.created_at + interval '0.1 seconds',
            true, 204, '', 20 + d.id %% 180, '', NULL
        FROM {delivery} d JOIN {endpoint} w ON w.id = d.endpoint_id WHERE d.id > %(after)s ORDER BY d.id
    """, {"after": after_delivery, "salt": p["salt"]})
    cursor.execute(f"""
        INSERT INTO {quoted_table(CarrierReport)} (carrier, carrier_message_id, status, raw, received_at, message_id)
        SELECT 'sandbox', carrier_message_id, status, jsonb_build_object('report', jsonb_build_object(
                'status', status, 'reference', '', 'error_code', error_code, 'error_message', '',
                'carrier_status', CASE status WHEN 'delivered' THEN 'DELIVRD' ELSE 'UNDELIV' END,
                'carrier_message_id', carrier_message_id),
            'received', CASE WHEN redacted_at IS NULL THEN '{{}}'::jsonb ELSE '"redacted"'::jsonb END),
            coalesce(delivered_at, undelivered_at), id
        FROM {message} WHERE id > %(after)s AND status IN ('delivered', 'undelivered') ORDER BY id
    """, p)
    cursor.execute(f"""
        INSERT INTO {quoted_table(CarrierInbound)} (carrier, from_number, "to", body, raw, received_at, message_id)
        SELECT 'sandbox', from_number, "to", body, CASE WHEN redacted_at IS NULL THEN jsonb_build_object(
                'from', from_number, 'to', "to", 'body', body, 'id', carrier_message_id) ELSE '"redacted"' END,
            created_at, id
        FROM {message} WHERE id > %(after)s AND direction = 'inbound' ORDER BY id
    """, p)
    ledger = quoted_table(LedgerEntry)
    # A charge for every live outbound message with a price; a refund for what no carrier took.
    cursor.execute(f"""
        INSERT INTO {ledger} (public_id, account_id, livemode, type, amount, currency, message_id, reason,
            created_by_id, created_at)
        SELECT {sql_id('txn', "'c' || id")}, account_id, true, 'charge', -price, currency, public_id, '', NULL::integer,
            created_at
        FROM {message} WHERE id > %(after)s AND livemode AND direction = 'outbound' AND price > 0
        UNION ALL
        SELECT {sql_id('txn', "'r' || id")}, account_id, true, 'refund', price, currency, public_id,
            CASE status WHEN 'canceled' THEN 'canceled' ELSE error_code END, NULL,
            coalesce(failed_at, expired_at, canceled_at)
        FROM {message} WHERE id > %(after)s AND livemode AND status IN ('failed', 'expired', 'canceled') AND price > 0
    """, p)


def _opt_outs(accounts, messages: int) -> None:
    """Recipients who texted STOP, in every account: the send's check reads this table."""
    rows = []
    for account, share in accounts:
        sender = Sender.objects.filter(account=account).values_list("value", flat=True)[0]
        count = max(1, int(messages * share * OPT_OUTS_PER_MESSAGE))
        rows += [OptOut(account=account, livemode=True, phone_number=f"+1540{100 + n // 10000:03d}{n % 10000:04d}",
                        sender=sender, keyword="STOP") for n in range(count)]
    OptOut.objects.bulk_create(rows, batch_size=10_000)


def _ledger_close(accounts, now) -> None:
    """A top-up at the start of each month covering it, then every live balance set to its ledger's sum (the
    invariant billing keeps: `billing.services`)."""
    ledger = quoted_table(LedgerEntry)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"""
            INSERT INTO {ledger} (public_id, account_id, livemode, type, amount, currency, message_id, reason,
                created_by_id, created_at)
            SELECT {sql_id('txn', "'t' || account_id || '.' || month")}, account_id, true, 'top_up',
                ceil(-sum(amount) / 100) * 100 + 100, 'USD', '', 'Monthly top-up', NULL, month
            FROM (SELECT account_id, amount, date_trunc('month', created_at) AS month FROM {ledger}
                  WHERE account_id = ANY(%(accounts)s) AND type IN ('charge', 'refund')) AS entries
            GROUP BY account_id, month
        """, {"accounts": [a.pk for a, _ in accounts], "salt": secrets.token_hex(8)})
        cursor.execute(f"""
            UPDATE {quoted_table(Balance)} b SET amount = total.amount, updated_at = %(now)s
            FROM (SELECT account_id, livemode, sum(amount) AS amount FROM {ledger} GROUP BY account_id, livemode) total
            WHERE b.account_id = total.account_id AND b.livemode = total.livemode AND b.account_id = ANY(%(accounts)s)
        """, {"accounts": [a.pk for a, _ in accounts], "now": now})


def _idempotency_records(account: Account, now) -> None:
    """The answers of the last hours' keyed sends (every live send of the bench's account keyed, as the SDK
    does), sealed as `mittis.api.idempotency` seals them."""
    from mittis.api.idempotency import _context

    rows = list(Message.objects.filter(account=account, livemode=True, direction=Message.OUTBOUND,
                                       created_at__gte=now - RECORDS_WITHIN).values(*MESSAGE_FIELDS))
    records = []
    for row, body in zip(rows, messages_json(rows)):
        key = f"preload-{row['public_id']}"
        answer = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        records.append(IdempotencyRecord(
            account=account, livemode=True, key=key, fingerprint=secrets.token_hex(32), method="POST",
            path="/v1/messages", request_id="req_" + secrets.token_urlsafe(18)[:24], response_status=201,
            response_content_type="application/json",
            response_body=crypto.seal(answer, context=_context(account_id=account.pk, livemode=True, key=key)),
            object_id=row["public_id"], created_at=row["created_at"]))
    IdempotencyRecord.objects.bulk_create(records, batch_size=5_000)
