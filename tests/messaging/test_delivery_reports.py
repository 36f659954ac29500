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


# --- One carrier id, several messages (an SMSC that restarted begins its ids again) -----------------------
def accepted_as(account, carrier_message_id: str, *, carrier="smsc") -> Message:
    message = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")
    assert claim_attempt(message.pk, 1)
    carriers_accepted([Accepted(message, carrier, SendResult(carrier_message_id=carrier_message_id), attempt=None,
                                attempts=[])])
    message.refresh_from_db()
    return message


def delivered(message: Message) -> Message:
    message_apply_delivery_report(carrier=message.carrier, report=report(message, statuses.DELIVERED))
    message.refresh_from_db()
    return message


@pytest.mark.parametrize("older_final, newer_final, lands_on", [
    (True, False, "newer"),
    (False, True, "older"),  # never a final message over one still waiting
    (False, False, "newer"),
    (True, True, "newer"),  # recorded on the newest, and changes nothing
])
def test_a_carrier_id_several_messages_share_lands_on_the_newest_still_waiting(account, older_final, newer_final,
                                                                              lands_on):
    older = accepted_as(account, "0000010000")
    if older_final:
        delivered(older)
    newer = accepted_as(account, "0000010000")
    if newer_final:
        delivered(newer)

    applied = message_apply_delivery_report(carrier="smsc", report=DeliveryReport(
        "0000010000", statuses.UNDELIVERED, carrier_status="UNDELIV", error_code="unknown_error"))

    target = {"older": older, "newer": newer}[lands_on]
    assert applied.pk == target.pk and CarrierReport.objects.filter(status="undelivered").get().message_id == target.pk
    expected = {older.pk: "delivered" if older_final else "sent", newer.pk: "delivered" if newer_final else "sent"}
    if not statuses.is_final(expected[target.pk]):
        expected[target.pk] = "undelivered"
    assert dict(Message.objects.filter(pk__in=[older.pk, newer.pk]).values_list("pk", "status")) == expected


def test_a_report_naming_our_reference_lands_on_it_though_an_older_message_holds_the_carrier_id(account):
    older = delivered(accepted_as(account, "0000010000"))
    newer = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")
    assert claim_attempt(newer.pk, 1)  # the SMSC took it, and its receipt overtook the answer to the submit

    applied = message_apply_delivery_report(carrier="smsc", report=DeliveryReport(
        "0000010000", statuses.DELIVERED, carrier_status="DELIVRD", reference=newer.public_id))

    newer.refresh_from_db()
    assert applied.pk == newer.pk
    assert (newer.status, newer.carrier, newer.carrier_message_id) == ("delivered", "smsc", "0000010000")
    assert [e.type for e in older.events.all()] == ["message.queued", "message.sent", "message.delivered"]
    assert older.reports.count() == 1
