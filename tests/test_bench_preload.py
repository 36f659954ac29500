"""`make bench --preload N`'s history (mittis/ops/preload.py), written small on the test database: every status,
every related row consistent with its message, money that adds up, ids of the right shape, and JSON that is what
the one builder builds, so the API answers preloaded messages as it answers its own."""

from collections import Counter
from decimal import Decimal
import json

from django.test import override_settings
from django.db import connection
from django.db.models import Sum
import pytest
from rest_framework.test import APIClient

from billing.models import Balance, LedgerEntry
from billing.services import balance_top_up
from messaging import statuses
from messaging.models import CarrierInbound, CarrierReport, Message, OptOut, SendAttempt
from messaging.representation import MESSAGE_FIELDS, messages_json
from mittis.accounts.models import Account
from mittis.api.models import IdempotencyRecord
from mittis.ops.preload import history_preload
from tests.factories import api_key_for
from tests.messaging.test_representation import validate_message  # noqa: F401 (a fixture)
from webhooks.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from webhooks.services import endpoint_create
from webhooks.services.payloads import payload_json

MESSAGES = 20_000
CHUNK = 7_000  # three chunks: the second and third find the rows of the first in place
ID_PREFIXES = {Message: "msg", Event: "evt", DeliveryAttempt: "whd", LedgerEntry: "txn",
               OptOut: "opt", Account: "acct", WebhookEndpoint: "we"}


@pytest.fixture(scope="module")
def preloaded(django_db_setup, django_db_blocker):
    """The bench's account (a live sender, endpoint and balance, as `bench._setup` makes them) and the history,
    written once for the module and removed after it."""
    with django_db_blocker.unblock():
        from tests.factories import AccountFactory, SenderFactory
        account = AccountFactory(name="bench")
        SenderFactory(account=account, value="+18045550142")
        balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1000000"))
        # For this call only: a module's setting left behind let later tests' private URLs through.
        with override_settings(MITTIS_WEBHOOK_ALLOWED_PRIVATE=["127.0.0.1"], MITTIS_WEBHOOK_ALLOW_HTTP=True):
            endpoint_create(account=account, livemode=True, url="http://127.0.0.1:9/hooks", enabled_events=["*"])
        result = history_preload(account=account, messages=MESSAGES, chunk=CHUNK, say=lambda line: None)
        yield account, result
        with connection.cursor() as cursor:  # what the module wrote, so the next module starts empty
            ids = result.accounts
            endpoints = "SELECT id FROM webhooks_webhookendpoint WHERE account_id = ANY(%s)"
            messages = "SELECT id FROM messaging_message WHERE account_id = ANY(%s)"
            for table, where in [("webhooks_deliveryattempt", f"endpoint_id IN ({endpoints})"),
                                 ("webhooks_delivery", f"endpoint_id IN ({endpoints})"),
                                 ("webhooks_event", "account_id = ANY(%s)"),
                                 *((table, f"message_id IN ({messages})") for table in (
                                     "messaging_sendattempt", "messaging_carrierreport",
                                     "messaging_carrierinbound")),
                                 ("messaging_message", "account_id = ANY(%s)"),
                                 ("billing_ledgerentry", "account_id = ANY(%s)")]:
                cursor.execute(f"DELETE FROM {table} WHERE {where}", [ids])
        Account.objects.filter(pk__in=ids).delete()  # and what cascades from them


@pytest.fixture
def live_api(preloaded, db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(preloaded[0], livemode=True)}")
    return client


def test_every_status_is_there_and_most_messages_are_delivered(preloaded, db):
    counts = Counter(Message.objects.values_list("status", flat=True))

    assert sum(counts.values()) == MESSAGES
    assert set(counts) == set(statuses.ALL) - {statuses.SENDING}
    assert 0.85 < counts[statuses.DELIVERED] / MESSAGES < 0.9
    assert counts[statuses.RECEIVED] == Message.objects.filter(direction=Message.INBOUND).count() > 0
    bench = Message.objects.filter(account=preloaded[0]).count()
    assert 0.8 < bench / MESSAGES < 0.9 and len(preloaded[1].accounts) == 4


def test_thirteen_months_with_only_the_last_day_in_flight(preloaded, db):
    from django.utils import timezone

    now = timezone.now()
    oldest = Message.objects.order_by("created_at").first().created_at
    assert 394 <= (now - oldest).days <= 395
    in_flight = Message.objects.exclude(status__in=statuses.FINAL)
    assert in_flight.filter(created_at__lt=now - django_settings_day()).count() == 0
    # Ids follow time, as rows written by the API do: the list's order (-id) is newest first.
    ordered = list(Message.objects.order_by("id").values_list("created_at", flat=True))
    assert ordered == sorted(ordered)
    # The month past retention is due, the older ones were redacted by earlier nights.
    assert preloaded[1].due > 0
    assert not Message.objects.filter(created_at__lt=now - timezone.timedelta(days=61), redacted_at__isnull=True,
                                      status__in=statuses.FINAL).exists()


def django_settings_day():
    from datetime import timedelta
    return timedelta(days=1)


def test_public_ids_are_unique_and_of_their_prefix(preloaded, db):
    for model, prefix in ID_PREFIXES.items():
        rows = model.objects.count()
        assert rows > 0, model
        assert model.objects.values("public_id").distinct().count() == rows, model
        assert not model.objects.exclude(public_id__regex=rf"^{prefix}_[A-Za-z0-9]{{24}}$").exists(), model


def test_each_message_has_its_timeline(preloaded, db):
    with connection.cursor() as cursor:
        # Every message has events 1..event_sequence, of its account and mode.
        cursor.execute("""
            SELECT count(*) FROM messaging_message m WHERE m.event_sequence <> (
                SELECT count(*) FROM webhooks_event e WHERE e.object_id = m.public_id AND e.account_id = m.account_id
                    AND e.livemode = m.livemode)
            OR m.event_sequence <> (SELECT max(sequence) FROM webhooks_event e WHERE e.object_id = m.public_id)""")
        assert cursor.fetchone()[0] == 0
    assert Event.objects.count() > 2.5 * MESSAGES


def test_the_last_event_is_the_message_as_the_builder_builds_it(preloaded, db, validate_message):
    """The twin check the API's own writers pass: an event's data is the message at that moment, and a final
    message's last event is the message now. Payloads are its data, in the event's envelope, compact."""
    rows = list(Message.objects.filter(pk__in=sample_ids()).values(*MESSAGE_FIELDS, "event_sequence"))
    seen = set()
    for row, built in zip(rows, messages_json(rows)):
        validate_message(built)
        last = Event.objects.get(object_id=row["public_id"], sequence=row["event_sequence"])
        assert last.data == built, row["public_id"]
        for event in Event.objects.filter(object_id=row["public_id"]):
            validate_message(event.data)
            hook = event
            payload = json.loads(hook.payload)
            assert payload == {
                "object": "event", "id": event.public_id, "type": event.type,
                "created_at": event.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "livemode": row["livemode"],
                "sequence": event.sequence, "data": event.data}
            # Stored as `events_publish` stores it: compact, the data's keys in the builder's order.
            assert hook.payload == payload_json(payload) and list(payload["data"]) == list(built)
            assert event.data["status"] == event.status and event.type == statuses.EVENT_TYPES[event.status]
        seen.add((row["status"], row["redacted_at"] is not None))
    assert {status for status, _ in seen} == set(statuses.ALL) - {statuses.SENDING}
    assert (statuses.DELIVERED, True) in seen and (statuses.DELIVERED, False) in seen


def sample_ids() -> list[int]:
    """A few messages of each status, old (redacted) and recent."""
    ids = []
    for status in statuses.ALL:
        for redacted in (True, False):
            ids += Message.objects.filter(status=status, redacted_at__isnull=not redacted).order_by("?").values_list(
                "pk", flat=True)[:3]
    return ids


def test_deliveries_and_attempts_point_at_the_events_of_subscribed_endpoints(preloaded, db):
    live_events_with_endpoint = Event.objects.filter(livemode=True).count()  # every account has a live endpoint
    assert Delivery.objects.count() == live_events_with_endpoint > 0
    assert not Delivery.objects.exclude(status=Delivery.SUCCEEDED).exists()
    assert DeliveryAttempt.objects.count() == Delivery.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT count(*) FROM webhooks_delivery d JOIN webhooks_event e ON e.id = d.event_id
            JOIN webhooks_webhookendpoint w ON w.id = d.endpoint_id
            JOIN webhooks_deliveryattempt a ON a.delivery_id = d.id
            WHERE w.account_id <> e.account_id OR a.endpoint_id <> w.id OR a.url <> w.url OR NOT a.succeeded""")
        assert cursor.fetchone()[0] == 0
    from webhooks.models import lane_key
    for delivery in Delivery.objects.select_related("event").order_by("?")[:50]:
        assert delivery.lane_key == lane_key(delivery.event.object_id)


def test_attempts_reports_and_inbound_rows_belong_to_their_messages(preloaded, db):
    tried = Message.objects.filter(status__in=["delivered", "undelivered", "sent", "failed"])
    assert SendAttempt.objects.count() == tried.count()
    assert not SendAttempt.objects.exclude(message__status__in=["delivered", "undelivered", "sent", "failed"]).exists()
    reported = Message.objects.filter(status__in=["delivered", "undelivered"])
    assert CarrierReport.objects.count() == reported.count()
    for report in CarrierReport.objects.select_related("message").order_by("?")[:50]:
        assert report.carrier_message_id == report.message.carrier_message_id
        assert report.status == report.message.status
    assert CarrierInbound.objects.count() == Message.objects.filter(direction=Message.INBOUND).count()


def test_the_ledger_adds_up_to_every_balance(preloaded, db):
    for balance in Balance.objects.all():
        total = LedgerEntry.objects.filter(account_id=balance.account_id, livemode=balance.livemode).aggregate(
            total=Sum("amount"))["total"]
        assert balance.amount == total and balance.amount >= 0
    charged = Message.objects.filter(livemode=True, direction=Message.OUTBOUND, price__gt=0)
    assert LedgerEntry.objects.filter(type="charge").count() == charged.count()
    assert LedgerEntry.objects.filter(type="refund").count() == charged.filter(
        status__in=["failed", "expired", "canceled"]).count() > 0
    assert not LedgerEntry.objects.filter(livemode=False).exists()


def test_idempotency_records_of_the_last_hours_and_opt_outs(preloaded, db):
    records = IdempotencyRecord.objects.filter(account=preloaded[0])
    assert records.count() > 0
    assert set(records.values_list("object_id", flat=True)) <= set(
        Message.objects.filter(account=preloaded[0]).values_list("public_id", flat=True))
    assert OptOut.objects.count() >= 4 and not OptOut.objects.filter(phone_number__startswith="+1804").exists()


def test_the_api_answers_preloaded_messages_as_its_own(preloaded, live_api):
    account = preloaded[0]
    page = live_api.get("/v1/messages?limit=100")
    assert page.status_code == 200 and len(page.json()["data"]) == 100
    delivered = live_api.get("/v1/messages?status=delivered&limit=100").json()["data"]
    assert len(delivered) == 100 and {m["status"] for m in delivered} == {"delivered"}
    old = Message.objects.filter(account=account, livemode=True, redacted_at__isnull=False).order_by("id").first()
    recent = Message.objects.filter(account=account, livemode=True, status="delivered").order_by("-id").first()
    for message in (old, recent):
        answer = live_api.get(f"/v1/messages/{message.public_id}")
        assert answer.status_code == 200
        row = Message.objects.filter(pk=message.pk).values(*MESSAGE_FIELDS)[0]
        assert answer.json() == next(messages_json([row]))
    assert live_api.get(f"/v1/messages/{old.public_id}").json()["body"] is None
    events = live_api.get(f"/v1/messages/{recent.public_id}/events")
    assert events.status_code in (200, 404)
    assert json.dumps(page.json())  # JSON through and through
