"""Flat cost as the data grows: every beat sweep with nothing to do, and redaction's lookups, read an index holding only
the rows they look for, never a whole table; a list page reads only the messages it shows, whatever its filter's share;
and no index is kept that no query uses.

The plans are PostgreSQL's own (`EXPLAIN (FORMAT JSON)` of the very statements each task ran, with their
parameters), on tables holding tens of thousands of rows inserted by SQL and ANALYZEd, so that a sequential scan is
what the planner would pick if no fitting index existed. The time each takes at 2 M messages is in
docs/operations.md (Measurements).
"""

from datetime import datetime, timedelta
import json

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
import pytest
from rest_framework.test import APIClient

from mittis.api.idempotency import redact_stored_answers
from mittis.celery import app as celery_app
from mittis.ops.tasks import partitioned_tables
from mittis.partitions import month_of, next_month, partitions, partitions_create
from tests.factories import AccountFactory, api_key_for

ROWS = 30_000  # enough that reading a table costs the planner more than any fitting index

# What each beat task reads (the tables that grow with traffic), and the indexes it must read them through.
SWEEPS = {
    # Its queued half may take either index that holds queued messages (PostgreSQL picks by their sizes); at this
    # test's scale it may also AND them with message_status_idx, read whole, which at 30,000 rows costs it less than
    # the heap pages it saves (at 2 M it takes message_expiry_idx alone: docs/operations.md): SCALE_BOUND below.
    "messaging.requeue_stale_messages": {"messaging_message": {"message_waiting_idx", "message_expiry_idx"}},
    "messaging.dispatch_scheduled": {"messaging_message": {"message_scheduled_idx"}},
    "messaging.expire_overdue": {"messaging_message": {"message_expiry_idx"}},
    "messaging.close_stuck": {"messaging_message": {"message_sent_idx", "message_waiting_idx"}},
    "messaging.recover_interrupted_sends": {"messaging_message": {"message_waiting_idx"}},
    "messaging.recover_lost_reports": {"messaging_message": {"message_sent_idx"}},
    "messaging.redact_past_retention": {"messaging_message": {"message_retention_idx"}},
    "messaging.delete_expired_exports": {"messaging_export": {"export_expiry_idx"}},
    "messaging.scrub_exports": {"messaging_export": {"export_scrub_idx"}},
    "messaging.resume_exports": {"messaging_export": {"export_unfinished_idx"}},
    "api.purge_expired_idempotency_keys": {"api_idempotencyrecord": {"api_idempotencyrecord_created_at_37e80017"}},
    # Partitioned: in a month with few pending deliveries PostgreSQL may read its other index of pending ones alone.
    "webhooks.sweep_deliveries": {"webhooks_delivery": {"delivery_due_idx", "delivery_pending_idx"}},
    # It reads the catalog (which months have partitions) and no table: with nothing to do, no plan reads a row.
    "ops.maintain_partitions": {},
}
# Tasks whose plan at this test's scale may also read a whole small index, or take another index: only "no table read
# whole" is held.
SCALE_BOUND = {"messaging.requeue_stale_messages"}
GROWING = {"messaging_message", "messaging_export", "api_idempotencyrecord", "webhooks_event", "webhooks_delivery",
           "messaging_sendattempt"}


@pytest.fixture(scope="module")
def history(django_db_setup, django_db_blocker):
    """ROWS messages of the last 13 months, final, redacted past 30 days, each with an event, a delivered webhook and
    a stored answer of the last day; exports whose files are gone; and a few of each in flight, none of it due; the
    retention mark where last night's redaction left it.
    Made once for the module, in a transaction rolled back after its last test (each test's own is nested in it)."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield _history()
        transaction.set_rollback(True)


def _history():
    account = AccountFactory()
    this_month = month_of(timezone.now())
    for partitioned in partitioned_tables():  # each month of the history its partition, as the daily task made them
        partitions_create(partitioned, next_month(this_month, -13), this_month)
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO messaging_message (public_id, livemode, direction, status, from_number, "to", body, encoding,
              segments, price, currency, metadata, carrier, carrier_message_id, send_attempts, error_code, error_message,
              event_sequence, created_at, updated_at, sent_at, account_id, country, status_callback, expires_at,
              redacted_at)
            SELECT 'msg_h' || i, false, 'outbound', 'delivered', '+18045550142', '+18045550199',
              CASE WHEN c < now() - interval '30 days' THEN '' ELSE 'hi' END, 'GSM', 1, 0.0079, 'USD', '{}', 'sandbox',
              'sbx_' || i, 1, '', '', 3, c, c, c, %(account)s, 'US', '', c + interval '4 hours',
              CASE WHEN c < now() - interval '30 days' THEN c + interval '30 days' END
            FROM (SELECT i, now() - interval '395 days' * (1 - i::float / %(rows)s) AS c
                  FROM generate_series(1, %(rows)s) i) s""", {"account": account.pk, "rows": ROWS})
        # In flight, as at any moment, none of it due: just queued, sending and sent, and ten times as many scheduled
        # for later (a campaign waits days; a send, seconds).
        cursor.execute("""
            INSERT INTO messaging_message (public_id, livemode, direction, status, from_number, "to", body, encoding,
              segments, price, currency, metadata, carrier, carrier_message_id, send_attempts, error_code, error_message,
              event_sequence, created_at, updated_at, sent_at, account_id, country, status_callback, expires_at, send_at)
            SELECT 'msg_f' || i, false, 'outbound', st, '+18045550142', '+18045550199', 'hi', 'GSM', 1, 0.0079, 'USD',
              '{}', 'sandbox', '', 1, '', '', 1, now(), now(), CASE WHEN st = 'sent' THEN now() END, %(account)s, 'US',
              '', now() + interval '3 days', CASE WHEN st = 'scheduled' THEN now() + interval '2 days' END
            FROM (SELECT i, (ARRAY['queued', 'sending', 'sent', 'scheduled'])[least(1 + i %% 13, 4)] AS st
                  FROM generate_series(1, 520) i) s""", {"account": account.pk})
        cursor.execute("""
            INSERT INTO messaging_sendattempt (message_id, number, carrier, started_at, latency_ms, outcome,
              carrier_message_id, raw_code, error_code, error_message)
            SELECT id, 1, 'sandbox', created_at + interval '0.3 seconds', 40, 'accepted', carrier_message_id, '', '', ''
            FROM messaging_message WHERE status = 'delivered'""")
        cursor.execute("""
            INSERT INTO webhooks_event (public_id, livemode, type, object_id, sequence, payload, created_at, account_id)
            SELECT 'evt_h' || id, false, 'message.delivered', public_id, 3, '{}', created_at, account_id
            FROM messaging_message""")
        cursor.execute("""
            INSERT INTO webhooks_delivery (callback_url, status, attempts, next_attempt_at, created_at, updated_at,
              event_id, event_created_at, lane_key)
            SELECT 'https://example.com/hook', CASE WHEN id % 1000 = 0 THEN 'pending' ELSE 'succeeded' END, 1,
              CASE WHEN id % 1000 = 0 THEN now() + interval '1 hour' ELSE created_at END, created_at, created_at, id,
              created_at, 0
            FROM webhooks_event""")
        cursor.execute("""
            INSERT INTO api_idempotencyrecord (livemode, key, fingerprint, method, path, request_id, response_status,
              response_content_type, response_body, created_at, account_id, object_id, api_version)
            SELECT false, 'key-' || i, md5(i::text), 'POST', '/v1/messages', 'req_' || i, 201, 'application/json',
              '\\x00', now() - interval '23 hours' * (1 - i::float / %(rows)s), %(account)s, 'msg_h' || i, '2026-12-07'
            FROM generate_series(1, %(rows)s) i""", {"account": account.pk, "rows": ROWS})
        cursor.execute("""
            INSERT INTO messaging_export (public_id, livemode, type, format, start, "end", filters, status, progress,
              row_count, file_parts, file_size, error, created_by, created_at, completed_at, expires_at, file_deleted_at,
              account_id, csv_safe, redactions_pending)
            SELECT 'exp_h' || i, false, 'messages', 'csv', c - interval '30 days', c, '{}', 'succeeded', 100, 1,
              ARRAY['exports/' || i || '.csv'], 1, '', '', c, c, c + interval '7 days',
              CASE WHEN c < now() - interval '7 days' THEN c + interval '7 days' END, %(account)s, false, 0
            FROM (SELECT i, now() - interval '395 days' * (1 - i::float / %(rows)s) AS c
                  FROM generate_series(1, %(rows)s) i) s""", {"account": account.pk, "rows": ROWS})
        # Statistics of every row, not of ANALYZE's random sample of 30,000: the plans are then the same on every run
        # (a sample that happened to miss most of the 40 `sending` messages once planned a sweep through another index).
        cursor.execute("SET LOCAL default_statistics_target = 1000")
        # Redaction past retention got up to the cutoff of the night before (its messages were written around the
        # API, older than their account: the mark says where to start).
        cursor.execute("INSERT INTO messaging_retentionmark (account_id, redacted_before) "
                       "VALUES (%s, now() - interval '31 days')", [account.pk])
        for table in GROWING:
            cursor.execute(f"ANALYZE {table}")
    return account


def statements_of(run) -> list[tuple[str, list | tuple | dict | None]]:
    """Every statement `run()` executes, as executed: SQL and parameters."""
    executed = []

    def record(execute, sql, params, many, context):
        executed.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        run()
    return executed


def scans(statements) -> set[tuple[str, str, str | None]]:
    """(node type, table, index) of every node in the plans of `statements` that reads a growing table or its index
    (a bitmap's index scan names no table, and its heap scan no index)."""
    found = set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, tablename FROM pg_indexes WHERE schemaname = current_schema()")
        table_of = dict(cursor.fetchall())
        # A partition's scan names the partition and its copy of the index: each stands for its table's, and index's.
        cursor.execute("SELECT c.relname, p.relname, c.relpages = 0 AND c.relkind = 'r' FROM pg_inherits i "
                       "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent")
        partitions = cursor.fetchall()
        parent_of = {partition: parent for partition, parent, _empty in partitions}
        # A month ahead, empty: PostgreSQL reads its no pages rather than an index. It reads nothing.
        empty = {partition for partition, _parent, is_empty in partitions if is_empty}

    def walk(node):
        table = node.get("Relation Name") or table_of.get(node.get("Index Name"))
        if node["Node Type"] == "Seq Scan" and table in empty:
            table = None
        table, index = parent_of.get(table, table), parent_of.get(node.get("Index Name"), node.get("Index Name"))
        if table in GROWING:
            found.add((node["Node Type"], table, index))
        for child in node.get("Plans", []):
            walk(child)

    with connection.cursor() as cursor:
        for sql, params in statements:
            if sql.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE", "WITH")):
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
                plan = cursor.fetchone()[0]
                walk((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
    return found


def test_every_beat_task_is_in_the_table():
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} == set(SWEEPS)


@pytest.mark.parametrize("task", SWEEPS)
def test_a_sweep_with_nothing_to_do_reads_only_its_partial_index(history, db, task):
    celery_app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them
    statements = statements_of(celery_app.tasks[task].run)

    found = scans(statements)
    used = {(table, index) for _node, table, index in found if index}
    expected = {(table, index) for table, indexes in SWEEPS[task].items() for index in indexes}
    assert task in SCALE_BOUND or used & expected or not (expected or found)
    assert task in SCALE_BOUND or used <= expected
    # A table is read only where its index pointed (a bitmap's heap scan), or written (a DELETE's rows): never whole.
    assert not {node for node, _table, _index in found} - {
        "Index Scan", "Index Only Scan", "Bitmap Index Scan", "Bitmap Heap Scan", "ModifyTable"}


def test_redaction_reaches_a_recent_messages_stored_answers_through_their_index(history, db):
    """A message redacted on request within the day: its stored answers are found by `object_id`, never by reading the
    account's day of POSTs."""
    statements = statements_of(lambda: redact_stored_answers(
        None, account_id=history.pk, livemode=False, object_id="msg_h29990", created_at=timezone.now() - timedelta(hours=1),
        changes={"body": None}))

    assert scans(statements) == {("Bitmap Index Scan", "api_idempotencyrecord", "idempotency_object_idx"),
                                 ("Bitmap Heap Scan", "api_idempotencyrecord", None)}


def test_redaction_of_an_old_message_does_not_look_for_stored_answers(history, db):
    """Answers live a day: a message past retention is in none, so its redaction asks nothing."""
    statements = statements_of(lambda: redact_stored_answers(
        None, account_id=history.pk, livemode=False, object_id="msg_h1", created_at=timezone.now() - timedelta(days=31),
        changes={"body": None}))

    assert statements == []


def test_an_exports_chunks_each_read_the_rows_after_their_key(history, db):
    """An export reads its rows a chunk at a time, each chunk a query from the key where the one before ended. Prepared
    (DATABASE_PREPARE_THRESHOLD), PostgreSQL would soon plan that query once for any key and range, guess the range
    narrow, and read and sort all of it for every chunk (messaging.exports._planned_for_its_values)."""
    from messaging import exports
    from messaging.models import Export

    export = Export(account=history, livemode=False, type=Export.MESSAGES, format=Export.CSV, filters={},
                    start=timezone.now() - timedelta(days=400), end=timezone.now() + timedelta(days=1))
    statements = statements_of(lambda: sum(1 for _ in exports._rows(export, after=0)))

    chunks = [(sql, params) for sql, params in statements if 'FROM "messaging_message"' in sql]
    assert len(chunks) > 10  # enough for PostgreSQL to try a generic plan
    with connection.cursor() as cursor:
        cursor.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                       "WHERE statement LIKE %s", ['%FROM "messaging_message" WHERE%"id" > $%'])
        plans = cursor.fetchall()
    assert plans and all(generic == 0 for generic, _custom in plans)
    assert scans(chunks) <= {("Index Scan", "messaging_message", "messaging_message_pkey"),
                             ("Index Scan", "messaging_message", "message_list_idx")}


# --- List pages: read from the index of their filter, whatever the statuses' shares ------------------------------------
# The history's 30,000 messages are delivered; its 520 newest are in flight. Reading `?status=delivered` whole rows
# through the ORM, PostgreSQL took the primary key backward and filtered out every newer message that was not
# delivered (at 5 M, with a burst of queued messages on top: 57-195 ms a page). The page's ids alone come whole from
# the status's index; its rows are then read by id.
LIST_PAGES = {
    "status=delivered": "message_status_idx",  # the majority, past the newer burst
    "status=queued": "message_status_idx",  # a minority, within it
    "status=delivered&starting_after=msg_h20000": "message_status_idx",
    "status=delivered&ending_before=msg_h20000": "message_status_idx",
    "": None,  # this history's messages are all one account's: the primary key backward is as good as its index
}


@pytest.mark.parametrize("query", LIST_PAGES)
def test_a_list_page_reads_only_the_messages_it_shows(history, db, query):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(history)}")
    client.get("/v1/messages?limit=1")  # the key looked up and touched: what remains is the page's

    statements = statements_of(lambda: client.get(f"/v1/messages?limit=100&{query}"))

    nodes = [node for sql, params in statements if sql.lstrip().upper().startswith("SELECT")
             for node in analysed(sql, params) if node.get("Relation Name") == "messaging_message"]
    if LIST_PAGES[query]:
        assert {node["Index Name"] for node in nodes} <= {LIST_PAGES[query], "messaging_message_pkey",
                                                          "message_public_id_unique"}  # its ids; rows by id; a cursor
        assert LIST_PAGES[query] in {node["Index Name"] for node in nodes}
    assert sum(node.get("Rows Removed by Filter", 0) for node in nodes) == 0, nodes


# --- A message's attempts: read from the months since the message was created ------------------------------------------
ATTEMPT_READS = {
    "retrieve": "/v1/messages/msg_h29990",  # some three hours old
    "list page": "/v1/messages?limit=100&status=delivered",  # the newest delivered: a day and a half
}


@pytest.mark.parametrize("read", ATTEMPT_READS)
def test_a_recent_messages_attempts_are_read_from_the_months_since_it_was_created_alone(history, db, read):
    """The attempts' partitions PostgreSQL ran are those of the months since the oldest message shown was created (and
    the default one): each message's probe skips the months before (`a.started_at >= m.created_at`), PostgreSQL's
    pruning as it runs, so the plan lists them all and EXPLAIN ANALYZE shows them never executed."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(history)}")
    client.get("/v1/messages?limit=1")  # the key looked up and touched: what remains is the read's

    statements = statements_of(lambda: client.get(ATTEMPT_READS[read]))

    shown = client.get(ATTEMPT_READS[read]).json()
    shown = shown.get("data", [shown])
    assert shown and all(len(message["attempts"]) == 1 for message in shown)
    since = month_of(min(datetime.fromisoformat(message["created_at"]) for message in shown))
    months = {name: month for month, name in partitions("messaging_sendattempt").items()}
    ran = {node["Relation Name"] for sql, params in statements if sql.lstrip().upper().startswith("SELECT")
           for node in analysed(sql, params)
           if node.get("Actual Loops") and node.get("Relation Name", "").startswith("messaging_sendattempt_p")}
    assert min(months.values()) < since  # the history's older months are there to be skipped
    assert ran and all(months.get(name, since) >= since for name in ran), ran  # the default one has no month


def analysed(sql: str, params) -> list[dict]:
    """The nodes of the plan `sql` ran by (EXPLAIN ANALYZE: the rows each read and threw away)."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    found, stack = [], [(json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(node.get("Plans", []))
    return found


# --- Unique text columns: no pattern (LIKE) index beside them, uniqueness kept ------------------------------------------
UNIQUE_TEXT = [
    ("accounts_account", "public_id"), ("accounts_apikey", "public_id"), ("accounts_apikey", "hashed_secret"),
    ("messaging_message", "public_id"), ("messaging_optout", "public_id"),
    ("messaging_carrier", "name"), ("messaging_export", "public_id"), ("webhooks_webhookendpoint", "public_id"),
    ("billing_ledgerentry", "public_id"),
]
# Partitioned by month (mittis/partitions.py), which cannot hold a unique constraint without the month: their random
# ids are indexed instead, and found through it.
INDEXED_TEXT = [("webhooks_deliveryattempt", "public_id"), ("webhooks_event", "public_id")]


def test_no_pattern_index_is_left_on_our_tables(db):
    """Django's `…_like` indexes serve only LIKE 'prefix%' queries, which nothing of ours runs (an id is looked up
    whole). Third-party apps' tables (django-axes) are theirs."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema() "
                       "AND indexdef LIKE '%%pattern_ops%%'")
        ours = [row for row in cursor.fetchall() if not row[0].startswith(("axes_", "auth_", "django_"))]
    assert ours == []


@pytest.mark.parametrize("table, column", UNIQUE_TEXT)
def test_unique_text_columns_refuse_a_duplicate(db, table, column):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
                       "AND c.conkey = ARRAY[a.attnum] WHERE c.conrelid = %s::regclass AND c.contype = 'u' "
                       "AND a.attname = %s", [table, column])
        assert cursor.fetchone() == (1,)


@pytest.mark.parametrize("table, column", INDEXED_TEXT)
def test_the_ids_of_a_partitioned_table_are_indexed(db, table, column):
    """By hash: an id is only ever looked up whole, and a hash index keeps 4 bytes of it a row, not the id."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
                       [table, f"%({column})"])
        assert [definition.split(" USING ")[1] for (definition,) in cursor.fetchall()] == [f"hash ({column})"]
        cursor.execute(f"EXPLAIN SELECT id FROM {table} WHERE {column} = 'evt_x'")
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "Index Scan" in plan or "Bitmap Index Scan" in plan, plan


def test_a_duplicate_public_id_is_refused(account):
    from messaging.services import message_create

    first = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")
    second = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")

    with pytest.raises(IntegrityError), transaction.atomic():
        type(second).objects.filter(pk=second.pk).update(public_id=first.public_id)
    with pytest.raises(IntegrityError), transaction.atomic():
        AccountFactory(public_id=account.public_id)
