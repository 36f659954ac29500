"""Every carrier's reports go through one service: recorded raw, applied under the row lock, never
moving a status backwards, and kept when they arrive before we know the carrier's id."""

import pytest

from messaging import statuses
from messaging.carriers.base import DeliveryReport, SendResult
from messaging.models import CarrierReport, Message
from messaging.services import message_apply_delivery_report, message_create, message_send
from messaging.services.send import Accepted, carriers_accepted, claim_attempt


@pytest.fixture
def sent(account):
    message = message_create(account=account, livemode=False, sender="+18045550142", to="+15005550003", body="hi")
    message_send(message_id=message.pk)  # the sandbox accepts it and never reports
    message.refresh_from_db()
    assert message.status == statuses.SENT
    return message


def report(message, status, code="DELIVRD", **extra):
    return DeliveryReport(message.carrier_message_id, status, carrier_status=code, **extra)


def test_a_report_is_applied_and_recorded_raw(sent):
    message_apply_delivery_report(carrier="sandbox", report=report(sent, statuses.DELIVERED), raw={"stat": "DELIVRD"})

    sent.refresh_from_db()
    assert sent.status == statuses.DELIVERED
    record = CarrierReport.objects.get()
    assert (record.message_id, record.status, record.raw["received"]) == (sent.pk, "delivered", {"stat": "DELIVRD"})


def test_a_late_report_never_rewrites_a_final_status(sent):
    message_apply_delivery_report(carrier="sandbox", report=report(sent, statuses.DELIVERED))
    message_apply_delivery_report(carrier="sandbox", report=report(sent, statuses.UNDELIVERED, "UNDELIV"))
    message_apply_delivery_report(carrier="sandbox", report=report(sent, statuses.SENT, "ENROUTE"))

    sent.refresh_from_db()
    assert sent.status == statuses.DELIVERED
    assert [e.type for e in sent.events.all()] == ["message.queued", "message.sent", "message.delivered"]
    assert CarrierReport.objects.count() == 3  # each kept, for staff


def test_a_report_from_another_carrier_with_the_same_id_does_not_touch_the_message(sent):
    message_apply_delivery_report(carrier="other", report=report(sent, statuses.DELIVERED))

    sent.refresh_from_db()
    assert sent.status == statuses.SENT


def test_a_report_that_overtakes_the_submit_answer_is_kept_and_applied_when_the_id_is_known(account):
    message = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")
    assert claim_attempt(message.pk, 1)
    early = DeliveryReport("carrier-id-7", statuses.DELIVERED, carrier_status="DELIVRD")

    assert message_apply_delivery_report(carrier="sandbox", report=early) is None
    assert CarrierReport.objects.get().message is None
    carriers_accepted([Accepted(message, "sandbox", SendResult(carrier_message_id="carrier-id-7"), attempt=None,
                                attempts=[])])

    message.refresh_from_db()
    assert message.status == statuses.DELIVERED
    assert [e.type for e in message.events.all()] == ["message.queued", "message.sent", "message.delivered"]
    assert CarrierReport.objects.get().message_id == message.pk


def test_a_report_naming_our_reference_matches_a_message_whose_submit_answer_was_lost(account):
    message = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")
    claim_attempt(message.pk, 1)

    message_apply_delivery_report(carrier="twilio-main", report=DeliveryReport(
        "SM0123", statuses.DELIVERED, carrier_status="delivered", reference=message.public_id))

    message.refresh_from_db()
    assert (message.status, message.carrier, message.carrier_message_id) == ("delivered", "twilio-main", "SM0123")


def test_an_undelivered_report_carries_its_error(sent):
    message_apply_delivery_report(carrier="sandbox", report=report(
        sent, statuses.UNDELIVERED, "UNDELIV", error_code="unknown_subscriber", error_message="No such number."))

    sent.refresh_from_db()
    assert (sent.status, sent.error_code, sent.error_message) == ("undelivered", "unknown_subscriber", "No such number.")
    assert Message.objects.get(pk=sent.pk).events.last().type == "message.failed"


def test_a_report_holding_text_postgresql_cannot_store_is_recorded_with_replacement_characters(sent):
    message_apply_delivery_report(carrier="sandbox", report=report(sent, statuses.UNDELIVERED, "UNDELIV\x00",
                                                                   error_message="Bad\x00 handset"),
                                  raw={"text": "id:1 stat:UNDELIV text:help\x00acme", "\x00": "\ud800"})

    sent.refresh_from_db()
    assert (sent.status, sent.error_message) == (statuses.UNDELIVERED, "Bad\ufffd handset")
    assert sent.events.get(type="message.failed").carrier_status == "UNDELIV\ufffd"
    assert CarrierReport.objects.get().raw["received"] == {"text": "id:1 stat:UNDELIV text:help\ufffdacme",
                                                           "\ufffd": "\ufffd"}
