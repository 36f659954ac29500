"""The SMPP carrier's receipts end to end (issue 25), against the SMSC simulator (tests/peers/smsc.js), whose
node-smpp decoding of what went over the wire the tests check: a receipt lands on the message the bind sent,
after the SMSC or the bind restarted too, and its network_error_code is in the message's error."""

import pytest

from messaging.models import CarrierReport
from tests.messaging.carriers.test_smpp import (  # noqa: F401 (fixtures)
    PHONE, bound, carrier, events, final, live, send, smsc, smsc_process, start_bind, wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

THREE_PARTS = "Your order has shipped. " * 19  # 456 GSM characters: three parts of up to 153


def receipts(smsc) -> list[dict]:
    return [deliver for deliver in smsc.get("/delivers") if deliver["kind"] == "receipt"]


def held(smsc, count: int) -> list[str]:
    """The message ids whose receipts the SMSC holds, once it holds `count`."""
    return wait_until(lambda: len(ids := smsc.get("/receipts/held")) == count and ids, what=f"{count} receipts held")


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
