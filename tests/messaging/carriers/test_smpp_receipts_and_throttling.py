"""The SMPP carrier's receipts and throttling end to end (issue 25), against the SMSC simulator
(tests/peers/smsc.js), whose node-smpp decoding of what went over the wire the tests check: a receipt lands
on the message the bind sent, after the SMSC or the bind restarted too; throttling slows what it names, never
the carrier's breaker, and a message it fails says so with its true attempts."""

import threading

from django.db import connection
import pytest

from messaging.carriers import smpp_bind
from messaging.carriers.registry import BREAKER_THRESHOLD, breaker_record
from messaging.models import Carrier, CarrierReport, Message, SendAttempt
from messaging.services import MAX_SEND_ATTEMPTS, message_send
from tests.conftest import SEED
from tests.messaging.carriers.test_smpp import (  # noqa: F401 (fixtures)
    PHONE, bound, carrier, events, final, live, send, smsc, smsc_process, start_bind, wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

BUSY = "+18045550177"  # a destination the tests have the SMSC throttle
THREE_PARTS = "Your order has shipped. " * 19  # 456 GSM characters: three parts of up to 153


def receipts(smsc) -> list[dict]:
    return [deliver for deliver in smsc.get("/delivers") if deliver["kind"] == "receipt"]


def held(smsc, count: int) -> list[str]:
    """The message ids whose receipts the SMSC holds, once it holds `count`."""
    return wait_until(lambda: len(ids := smsc.get("/receipts/held")) == count and ids, what=f"{count} receipts held")


def accepted(live, to: str) -> Message:
    """A message the API accepted, not yet sent."""
    response = live.post("/v1/messages", {"from": SEED["from"], "to": to, "body": "Hello"}, format="json")
    return Message.objects.get(public_id=response.json()["id"])


def in_own_connection(function):
    """`function` for a thread of its own, which closes the database connection it opened."""
    def run(**kwargs):
        try:
            function(**kwargs)
        finally:
            connection.close()
    return run


def attempts(message: Message) -> list[tuple[str, str, str]]:
    return list(message.attempts.values_list("outcome", "error_code", "raw_code"))


# --- Receipts: the message the bind sent ------------------------------------------------------------
def test_a_receipt_for_an_id_the_smsc_gave_again_lands_on_the_new_message_not_the_old_final_one(smsc, bound, live):
    old = final(send(live))
    assert old.status == "delivered"
    # The SMSC restarts and begins its ids again: the next message gets the old one's id, and its receipt comes
    # before the answer to its submit.
    smsc.post("/message-ids", {"next": old.carrier_message_id})
    smsc.post("/receipts/options", {"before_answer": True})

    new = send(live, body="Your second appointment is confirmed.")

    assert [submit["message_id"] for submit in smsc.submits_to(PHONE)] == [old.carrier_message_id] * 2
    assert final(new).status == "delivered"
    wait_until(lambda: [receipt["resp_status"] for receipt in receipts(smsc)] == [0, 0], what="both receipts answered")
    assert new.carrier_message_id == old.carrier_message_id
    assert events(new) == ["message.queued", "message.sent", "message.delivered"]
    assert events(old) == ["message.queued", "message.sent", "message.delivered"]
    assert CarrierReport.objects.filter(message=old).count() == CarrierReport.objects.filter(message=new).count() == 1


@pytest.mark.parametrize("second_part, status, error_code", [
    ("DELIVRD", "delivered", ""),
    ("UNDELIV", "undelivered", "unknown_error"),
])
def test_every_parts_receipt_lands_on_its_message_after_the_bind_restarted(smsc, carrier, start_bind, live,
                                                                          second_part, status, error_code):
    smsc.post("/receipts/options", {"hold": True})
    stop, thread = start_bind(carrier)
    message = send(live, body=THREE_PARTS)
    part_ids = [submit["message_id"] for submit in smsc.submits_to(PHONE)]
    assert len(part_ids) == 3 and message.carrier_message_id == part_ids[0]
    assert held(smsc, 3) == part_ids

    stop.set()  # the bind restarts: a new BindRunner, nothing kept in memory
    thread.join(10)
    start_bind(carrier)
    smsc.post("/receipts/release", {"reverse": True, "receipts": {part_ids[1]: {"stat": second_part}}})

    message = final(message)
    assert (message.status, message.error_code) == (status, error_code)
    wait_until(lambda: [(r["message_id"], r["stat"], r["resp_status"]) for r in receipts(smsc)] == [
        (part_ids[2], "DELIVRD", 0), (part_ids[1], second_part, 0), (part_ids[0], "DELIVRD", 0)],
        what="every part's receipt answered")
    assert not CarrierReport.objects.filter(message__isnull=True).exists()  # none left without its message


def test_a_receipts_network_error_code_is_in_the_messages_error(smsc, bound, live):
    smsc.post("/receipts/options", {"hold": True})
    message = send(live)
    [submit] = smsc.submits_to(PHONE)
    assert held(smsc, 1) == [submit["message_id"]]

    smsc.post("/receipts/release", {"receipts": {submit["message_id"]: {
        "stat": "UNDELIV", "err": "027", "network_error_code": "03001b"}}})  # GSM, error 27: absent subscriber

    message = final(message)
    [receipt] = receipts(smsc)
    assert (receipt["network_error_code"], receipt["resp_status"]) == ("03001b", 0)
    shown = live.get(f"/v1/messages/{message.public_id}").json()
    assert (shown["status"], shown["error_code"]) == ("undelivered", "unknown_error")
    assert shown["error_message"] == "The carrier could not deliver the message (err 027; GSM error 27)."
    assert message.events.last().carrier_status == "UNDELIV err:027 (GSM error 27)"


# --- Throttling --------------------------------------------------------------------------------------
def test_a_destination_whose_queue_is_full_holds_back_only_itself(smsc, bound, live, monkeypatch):
    monkeypatch.setattr(smpp_bind, "THROTTLE_PAUSE", 0.6)  # 3 tries again within THROTTLE_GIVE_UP of 5 s
    smsc.post("/throttle", {"to": BUSY, "status": "ESME_RMSGQFUL"})
    busy, unrelated = accepted(live, to=BUSY), accepted(live, to=PHONE)
    sending = threading.Thread(target=in_own_connection(message_send), kwargs={"message_id": busy.pk})
    sending.start()
    wait_until(lambda: smsc.submits_to(BUSY), what="the first submit to the busy destination")

    message_send(message_id=unrelated.pk)
    sending.join(10)

    [to_phone] = smsc.submits_to(PHONE)
    to_busy = smsc.submits_to(BUSY)
    assert [submit["command_status"] for submit in to_busy] == [0x14] * 4  # ESME_RMSGQFUL, tried again 3 times
    assert all(later["at"] - earlier["at"] >= 550 for earlier, later in zip(to_busy, to_busy[1:]))
    assert to_phone["at"] < to_busy[1]["at"]  # not held back by the busy destination's pause
    assert final(unrelated).status == "delivered"
    busy.refresh_from_db()
    assert busy.status == "sending"  # its own retry is scheduled
    assert attempts(busy) == [(SendAttempt.TEMPORARY_ERROR, "carrier_throttled", "ESME_RMSGQFUL")]
    assert Carrier.objects.get(name="smsc-test").breaker_failures == 0


@pytest.mark.parametrize("status, command_status, description", [
    ("ESME_RMSGQFUL", 0x14, "Message Queue is full"),
    ("ESME_RTHROTTLED", 0x58, "Throttling error (ESME has exceeded allowed message limits)"),
])
def test_throttling_never_opens_the_breaker_and_fails_a_message_as_throttled_after_its_attempts(
        smsc, bound, live, monkeypatch, status, command_status, description):
    monkeypatch.setattr(smpp_bind, "THROTTLE_PAUSE", 0.1)
    monkeypatch.setattr(smpp_bind, "THROTTLE_RETRIES", 0)  # each throttled submit is its attempt's answer
    smsc.post("/throttle", {"to": BUSY, "status": status})

    throttled = [send(live, to=BUSY, body=f"Reminder {n}") for n in range(BREAKER_THRESHOLD)]

    assert Carrier.objects.filter(name="smsc-test", breaker_state="closed", breaker_failures=0).exists()
    unrelated = send(live)
    assert (unrelated.status, attempts(unrelated)) == ("sent", [(SendAttempt.ACCEPTED, "", "")])

    message = throttled[0]
    for attempt in range(2, MAX_SEND_ATTEMPTS + 1):
        message_send(message_id=message.pk, attempt=attempt)
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "carrier_throttled")
    assert message.error_message == (f"No carrier could take the message after {MAX_SEND_ATTEMPTS} attempts: The "
                                     f"carrier could not take the message now: {description} ({status}).")
    assert attempts(message) == [(SendAttempt.TEMPORARY_ERROR, "carrier_throttled", status)] * MAX_SEND_ATTEMPTS
    to_busy = smsc.submits_to(BUSY)
    assert len(to_busy) == BREAKER_THRESHOLD + MAX_SEND_ATTEMPTS - 1
    assert {submit["command_status"] for submit in to_busy} == {command_status}


def test_a_message_throttled_then_held_by_an_open_breaker_says_both_with_its_true_attempts(smsc, bound, live,
                                                                                         monkeypatch):
    monkeypatch.setattr(smpp_bind, "THROTTLE_RETRIES", 0)
    smsc.post("/throttle", {"to": BUSY, "status": "ESME_RMSGQFUL"})
    message = send(live, to=BUSY)
    for _ in range(BREAKER_THRESHOLD):  # meanwhile an outage opens the carrier's breaker
        breaker_record("smsc-test", ok=False)

    for attempt in range(2, MAX_SEND_ATTEMPTS + 1):
        message_send(message_id=message.pk, attempt=attempt)

    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "carrier_throttled")
    assert message.error_message == (
        "No carrier could take the message after 1 attempt; when it was last retried, no carrier could be tried "
        "(each paused by its circuit breaker, or disabled). The last answer: The carrier could not take the "
        "message now: Message Queue is full (ESME_RMSGQFUL).")
    assert attempts(message) == [(SendAttempt.TEMPORARY_ERROR, "carrier_throttled", "ESME_RMSGQFUL")]
    assert [submit["command_status"] for submit in smsc.submits_to(BUSY)] == [0x14]
