"""The staff console as an operations tool: roles, a one-page message timeline, logged actions, the
dashboard, beat's periodic tasks, and pages that stay fast on a large table."""

from datetime import timedelta
from decimal import Decimal

from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
import pytest

from billing.models import LedgerEntry
from billing.services import balance_top_up
from messaging.carriers.base import DeliveryReport
from messaging.models import Message
from messaging.services import message_apply_delivery_report, message_create, message_send
from tests.conftest import SEED
from webhooks.models import DeliveryAttempt
from webhooks.services import delivery_attempt, endpoint_create


def staff(role: str) -> Client:
    user = User.objects.create_user(f"{role}-person", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def support(db):
    return staff("support")


@pytest.fixture
def operations(db):
    return staff("operations")


@pytest.fixture
def story(account, settings):
    """A live message with a charge, carrier attempt, delivery report and a failed webhook attempt."""
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = ["127.0.0.1"]
    settings.MITTIS_WEBHOOK_ALLOW_HTTP = True
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    endpoint_create(account=account, livemode=True, url="http://127.0.0.1:9/hooks", enabled_events=["*"])
    message = message_create(account=account, livemode=True, sender=SEED["from"], to=SEED["to"], body="hi")
    message_send(message_id=message.pk)
    message.refresh_from_db()
    message_apply_delivery_report(carrier=message.carrier, report=DeliveryReport(
        message.carrier_message_id, "delivered", carrier_status="DELIVRD"))
    from webhooks.models import Delivery
    for delivery in Delivery.objects.all():
        delivery_attempt(delivery_id=delivery.pk)  # port 9 refuses: recorded as failed attempts
    return message


def test_the_groups_exist_with_their_roles(db):
    support_perms = set(Group.objects.get(name="support").permissions.values_list("codename", flat=True))
    operations_perms = set(Group.objects.get(name="operations").permissions.values_list("codename", flat=True))

    assert {"view_message", "view_ledgerentry", "cancel_message", "redeliver_event"} <= support_perms
    assert not {"add_ledgerentry", "change_ledgerentry", "change_price", "add_apikey", "change_account"} & support_perms
    assert {"add_ledgerentry", "change_carrier", "recover_endpoint", "add_apikey"} <= operations_perms


def test_support_reads_everything_but_cannot_touch_money(support, story):
    assert support.get(reverse("admin:messaging_message_change", args=[story.pk])).status_code == 200
    assert support.get(reverse("admin:billing_ledgerentry_changelist")).status_code == 200
    assert support.get(reverse("admin:billing_ledgerentry_add")).status_code == 403
    response = support.post(reverse("admin:billing_ledgerentry_add"), {
        "account": story.account_id, "livemode": "on", "type": "adjustment", "amount": "100", "reason": "free money"})
    assert response.status_code == 403 and not LedgerEntry.objects.filter(type="adjustment").exists()
    assert support.get(reverse("admin:accounts_apikey_add")).status_code == 403


def test_operations_may_adjust_a_balance(operations, story):
    operations.post(reverse("admin:billing_ledgerentry_add"), {
        "account": story.account_id, "livemode": "on", "type": "adjustment", "amount": "-0.5", "reason": "goodwill"})

    entry = LedgerEntry.objects.get(type="adjustment")
    assert entry.created_by.username == "operations-person" and entry.reason == "goodwill"


def test_a_message_page_tells_its_whole_story_in_order(support, story):
    page = support.get(reverse("admin:messaging_message_change", args=[story.pk])).content.decode()

    timeline = page[page.index('id="timeline"'):]
    order = [timeline.index(text) for text in ("message.queued", "via <strong>sandbox</strong>", "message.sent",
                                               "message.delivered")]
    assert order == sorted(order)
    assert "charge -0.008 USD" in timeline and "DELIVRD" in timeline
    assert "Connection refused." in timeline  # the webhook attempts, with their outcome
    assert 'class="button redeliver"' in timeline  # support may redeliver


def test_redelivering_from_the_message_page_makes_a_new_attempt_and_is_logged(support, story):
    event_id = story.events.get(type="message.delivered").public_id
    before = DeliveryAttempt.objects.count()

    response = support.post(reverse("admin:messaging_message_redeliver", args=[story.pk, event_id]), follow=True)

    assert DeliveryAttempt.objects.count() == before + 1
    assert "Redelivered message.delivered" in response.content.decode()
    log = LogEntry.objects.get(object_id=str(story.pk), content_type__model="message")
    assert event_id in log.get_change_message() and log.user.username == "support-person"


def test_cancelling_a_scheduled_message_from_the_console_refunds_it_and_is_logged(support, account):
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    scheduled = message_create(account=account, livemode=True, sender=SEED["from"], to=SEED["to"], body="later",
                               send_at=timezone.now() + timedelta(days=1))

    support.post(reverse("admin:messaging_message_changelist"),
                 {"action": "cancel_scheduled", "_selected_action": [scheduled.pk]})

    scheduled.refresh_from_db()
    assert scheduled.status == "canceled"
    assert LedgerEntry.objects.filter(type="refund", message_id=scheduled.public_id).exists()
    assert LogEntry.objects.filter(object_id=str(scheduled.pk), change_message__contains="Canceled").exists()


def test_staff_disable_a_carrier_and_it_is_logged(operations, db):
    from messaging.models import Carrier

    carrier = Carrier.objects.create(name="smsc-1", kind="smpp")

    operations.post(reverse("admin:messaging_carrier_changelist"),
                    {"action": "disable_carriers", "_selected_action": [carrier.pk]})

    assert not Carrier.objects.get(pk=carrier.pk).enabled
    assert LogEntry.objects.filter(object_id=str(carrier.pk), change_message__contains="Disabled").exists()


def test_the_dashboard_draws_the_last_24_hours(operations, story):
    page = operations.get(reverse("admin:index")).content.decode()

    assert 'id="dashboard"' in page and page.count("<rect ") >= 1
    assert "delivered</title>" in page  # the hover text of the delivered bar
    assert "<td>sandbox</td>" in page  # the carrier table
    assert 'id="webhook-success">0% of' in page and 'id="failed-exports">0<' in page
    assert "cdn" not in page.lower()


def test_beats_periodic_tasks_are_in_the_console(operations):
    assert operations.get("/admin/django_celery_beat/periodictask/").status_code == 200
    assert operations.get("/admin/django_celery_beat/periodictask/add/").status_code == 200


@pytest.mark.django_db
def test_pages_stay_under_50_queries_with_100000_messages(operations, story, django_assert_max_num_queries):
    now = timezone.now()
    Message.objects.bulk_create([Message(
        account=story.account, livemode=True, status="delivered", from_number=SEED["from"], to=f"+1804555{n:04d}",
        body="bulk", encoding="GSM-7", segments=1, country="US", price=Decimal("0.008"), currency="USD",
        carrier="sandbox", public_id=f"msg_bulk{n:016d}", expires_at=now) for n in range(100_000)], batch_size=5000)

    with django_assert_max_num_queries(50):
        listing = operations.get(reverse("admin:messaging_message_changelist"))
    with django_assert_max_num_queries(50):
        searched = operations.get(reverse("admin:messaging_message_changelist") + "?q=%2B18045550042")
    with django_assert_max_num_queries(50):
        page = operations.get(reverse("admin:messaging_message_change", args=[story.pk]))

    assert listing.status_code == searched.status_code == page.status_code == 200
    assert "msg_bulk0000000000000042" in searched.content.decode()
