"""Monthly partitions of the append-only tables (mittis/partitions.py), on the test server's PostgreSQL: made
ahead by the daily task, a month past the history kept dropped whole (its rows gone, no row deleted from the
months kept), and a row of a month with no partition yet kept in the default one until its month is made."""

from datetime import date, datetime, timezone as dt_timezone

from django.apps import apps
from django.db import connection
import pytest
import time_machine

from messaging.models import CarrierReport, Message, SendAttempt
from messaging.services import message_create, message_send
from mittis.ops.tasks import maintain_partitions, partitioned_tables
from mittis.partitions import default_partition_name, month_of, next_month, partition_name, partitions
from webhooks.models import DeliveryAttempt

pytestmark = pytest.mark.django_db

REPORTS = CarrierReport._meta.db_table
ATTEMPTS = SendAttempt._meta.db_table


def test_every_model_with_a_partition_key_is_a_table_partitioned_by_month_of_it():
    declared = {model._meta.db_table: model.PARTITION_KEY for model in apps.get_models()
                if getattr(model, "PARTITION_KEY", None)}
    assert declared == {"webhooks_event": "created_at", "webhooks_delivery": "event_created_at",
                        "webhooks_deliveryattempt": "attempted_at", "messaging_carrierreport": "received_at",
                        "messaging_sendattempt": "started_at"}
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT c.relname, p.partstrat, a.attname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
            JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]""")
        partitioned = {table: (strategy, column) for table, strategy, column in cursor.fetchall()}
    assert partitioned == {table: ("r", key) for table, key in declared.items()}
    assert {(p.table, p.key) for p in partitioned_tables()} == set(declared.items())


def test_this_month_and_the_months_ahead_have_their_partitions_from_migrate(settings):
    this_month = month_of(datetime.now(dt_timezone.utc))
    for partitioned in partitioned_tables():
        months = partitions(partitioned.table)
        for ahead in range(settings.MITTIS_PARTITIONS_AHEAD + 1):
            assert next_month(this_month, ahead) in months, partitioned.table


def _report(received_at: datetime, ref: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {REPORTS} (carrier, carrier_message_id, status, raw, received_at) "
                       "VALUES ('sandbox', %s, 'delivered', '{}', %s)", [ref, received_at])


def _where(ref: str, table: str = REPORTS) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {table} WHERE carrier_message_id = %s", [ref])
        return cursor.fetchone()[0]


def _attempt(message: Message, started_at: datetime, ref: str) -> None:
    SendAttempt.objects.create(message=message, number=SendAttempt.objects.filter(message=message).count() + 1,
                               carrier="sandbox", started_at=started_at, outcome=SendAttempt.ACCEPTED,
                               carrier_message_id=ref)


@pytest.fixture
def message(account) -> Message:
    return message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")


def test_a_sends_attempt_lands_in_its_months_partition(message):
    message_send(message_id=message.pk)

    [attempt] = SendAttempt.objects.filter(message=message)
    assert attempt.started_at >= message.created_at
    assert _where(attempt.carrier_message_id, ATTEMPTS) == partition_name(ATTEMPTS, month_of(attempt.started_at))


def test_the_attempt_number_is_indexed_not_constrained():
    """Unique it cannot be, partitioned (SendAttempt's Meta says what keeps it so)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname = 'attempt_number_idx'",
                       [ATTEMPTS])
        [(definition,)] = cursor.fetchall()
    assert definition.startswith("CREATE INDEX ") and definition.endswith(" USING btree (message_id, number)")


def test_the_daily_task_makes_the_months_ahead_and_drops_whole_months_past_the_history_kept(settings, message):
    settings.MITTIS_HISTORY_MONTHS, settings.MITTIS_PARTITIONS_AHEAD = 13, 3
    now = datetime.now(dt_timezone.utc)
    this_month = month_of(now)
    _report(now, "this-month")
    _attempt(message, now, "this-month")
    later = next_month(this_month, 14)  # this month is then 14 months old: past the 13 kept
    kept_month = next_month(this_month, 1)
    _report(datetime.combine(kept_month, datetime.min.time(), dt_timezone.utc), "next-month")
    _attempt(message, datetime.combine(kept_month, datetime.min.time(), dt_timezone.utc), "next-month")

    with connection.cursor() as cursor:  # the rows' foreign-key checks now, as their commit would (the test's
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # transaction holds them, and a table with them pending stays)
    before = {p.table: set(partitions(p.table)) for p in partitioned_tables()}
    with time_machine.travel(datetime.combine(later, datetime.min.time(), dt_timezone.utc), tick=False):
        made_or_dropped = maintain_partitions()

    after = {p.table: set(partitions(p.table)) for p in partitioned_tables()}
    for table in after:  # every month from the first one kept on, none before; the four ahead made
        assert after[table] == {month for month in before[table] if month >= kept_month} | {
            next_month(later, ahead) for ahead in range(4)}, table
    assert this_month not in after[REPORTS] and kept_month in after[REPORTS]
    assert made_or_dropped == sum(len(after[t] ^ before[t]) for t in after)
    assert not CarrierReport.objects.filter(carrier_message_id="this-month").exists()  # gone with its month
    assert _where("next-month") == partition_name(REPORTS, kept_month)
    assert this_month not in after[ATTEMPTS] and kept_month in after[ATTEMPTS]
    assert list(SendAttempt.objects.filter(message=message).values_list("carrier_message_id", flat=True)) == [
        "next-month"]  # this month's went with its partition
    assert _where("next-month", ATTEMPTS) == partition_name(ATTEMPTS, kept_month)
    assert DeliveryAttempt.objects.count() == 0  # the other tables went through the same, holding nothing


def test_a_row_of_a_month_with_no_partition_is_kept_and_moves_into_its_month_once_made():
    far = next_month(month_of(datetime.now(dt_timezone.utc)), 24)
    _report(datetime.combine(far, datetime.min.time(), dt_timezone.utc), "far-ahead")
    assert _where("far-ahead") == default_partition_name(REPORTS)

    with time_machine.travel(datetime.combine(far, datetime.min.time(), dt_timezone.utc), tick=False):
        maintain_partitions()

    assert _where("far-ahead") == partition_name(REPORTS, far)
    assert CarrierReport.objects.filter(carrier_message_id="far-ahead").count() == 1


def test_month_arithmetic_crosses_years():
    assert next_month(date(2026, 12, 1)) == date(2027, 1, 1)
    assert next_month(date(2027, 1, 1), -13) == date(2025, 12, 1)
    assert month_of(datetime(2026, 2, 28, 23, 59, tzinfo=dt_timezone.utc)) == date(2026, 2, 1)
