"""What an SMSC sends us, against the simulator (tests/peers/smsc.js): any deliver_sm or data_sm its control
server composes, or raw bytes, each checked by our answer as node-smpp decoded it (its /pdus listing) and by
what was stored. Text holding NUL, data_sm, addresses in national form, numbers no account has, malformed PDUs,
and a bind that cannot connect."""

import socket
import struct

import pytest

from messaging.encoding import gsm7_encode
from messaging.models import CarrierInbound, Message, OptOut, SmppBind
from tests.conftest import SEED
from tests.messaging.carriers.test_smpp import (  # noqa: F401 (fixtures: the simulator, a bound carrier)
    PHONE, bound, carrier, final, live, make_carrier, send, smsc, smsc_process, start_bind, wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

NO_RECEIPT = "+15005550106"  # the simulator accepts it and never sends its receipt: the tests do
ESME_RINVCMDLEN = 0x00000002


def answer_to(smsc, sequence: int) -> tuple[str, int]:
    """Our answer to a PDU the simulator sent: (command, command_status), as node-smpp decoded them."""
    answered = wait_until(lambda: next((p for p in smsc.get("/pdus") if p["sequence_number"] == sequence
                                        and p["resp_command"]), None), what=f"the answer to #{sequence}")
    return answered["resp_command"], answered["resp_status"]


def smsc_sends(smsc, command: str, **fields) -> tuple[str, int]:
    """The simulator sends `command` with `fields` (bytes as octets); our answer."""
    fields = {name: {"hex": value.hex()} if isinstance(value, bytes) else value for name, value in fields.items()}
    return answer_to(smsc, smsc.post("/pdu", {"command": command, **fields})["sequence_number"])


def addresses(source=PHONE[1:], destination=SEED["from"][1:], *, source_ton=1, dest_ton=1) -> dict:
    """A phone's message to our sender, both international unless said otherwise."""
    return {"source_addr_ton": source_ton, "source_addr_npi": 1, "source_addr": source,
            "dest_addr_ton": dest_ton, "dest_addr_npi": 1, "destination_addr": destination}


def inbound() -> Message:
    return wait_until(lambda: Message.objects.filter(direction="inbound").first(), what="the inbound message")


# --- Text holding NUL: stored as it came, never refused --------------------------------------------
RECEIPT_HEAD = "id:{} sub:001 dlvrd:001 submit date:2612070900 done date:2612070901 stat:DELIVRD err:000 text:"


@pytest.mark.parametrize("body, receipt_data_coding, excerpt", [
    ("Reply to help@acme.example for support", 0x00, "Reply to help@acme.e"),  # GSM @ is 0x00
    ("Hello Zoë, 😀 see you at 10", 0x08, "Hello Zoë,"),  # UCS-2 Latin letters: every other octet 0x00
    ("Hello Zoë, 😀 see you at 10", 0x03, "\ufffdH\ufffde\ufffdl\ufffdl\ufffdo\ufffd \ufffdZ\ufffdo\ufffdë\ufffd,"),
    ("Appointment moved to 10:30 @ the Elm Street office. " * 4, 0x00, None),  # every part's UDH has 0x00
], ids=["gsm-at", "ucs2", "ucs2-octets-as-latin1", "udh"])
def test_a_receipt_quoting_the_messages_first_octets_is_answered_rok_and_applied(smsc, bound, live, body,
                                                                                 receipt_data_coding, excerpt):
    message = send(live, to=NO_RECEIPT, body=body)
    submits = smsc.submits_to(NO_RECEIPT)

    for submit in submits:  # as SMSCs write them: the first 20 octets of each part after "text:"
        receipt = RECEIPT_HEAD.format(submit["message_id"]).encode() + bytes.fromhex(submit["short_message"])[:20]
        answer = smsc_sends(smsc, "deliver_sm", **addresses(NO_RECEIPT[1:], SEED["from"][1:]), esm_class=0x04,
                            data_coding=receipt_data_coding, short_message=receipt)
        assert answer == ("deliver_sm_resp", 0)

    assert final(message).status == "delivered"
    received = message.reports.order_by("id").last().raw["received"]
    assert received["short_message"] == receipt.hex()  # the exact octets, beside the text
    if excerpt is not None:
        assert received["text"] == RECEIPT_HEAD.format(submits[-1]["message_id"]) + excerpt


@pytest.mark.parametrize("data_coding, octets", [
    (0x03, b"Hi\x00A"),  # Latin-1
    (0x01, b"Hi\x00A"),  # IA5
    (0x08, "Hi\x00A".encode("utf-16-be")),
    (0xF4, b"Hi\x00A"),  # message class group, 8-bit data
])
def test_an_inbound_body_holding_a_nul_is_received_with_a_replacement_character_and_its_octets(smsc, bound, live,
                                                                                              data_coding, octets):
    answer = smsc_sends(smsc, "deliver_sm", **addresses(), data_coding=data_coding, short_message=octets)

    assert answer == ("deliver_sm_resp", 0)
    message = inbound()
    assert (message.body, message.from_number, message.to) == ("Hi\ufffdA", PHONE, SEED["from"])
    as_received = CarrierInbound.objects.get(message=message)
    assert (as_received.body, as_received.raw["short_message"]) == ("Hi\ufffdA", octets.hex())


def test_a_stop_sent_with_its_c_string_terminator_opts_the_phone_out(smsc, bound, live, account):
    answer = smsc_sends(smsc, "deliver_sm", **addresses(), data_coding=0x03, short_message=b"STOP\x00")

    assert answer == ("deliver_sm_resp", 0)
    assert inbound().body == "STOP"
    assert OptOut.objects.filter(account=account, phone_number=PHONE).exists()


# --- data_sm ----------------------------------------------------------------------------------------
def test_a_message_from_a_phone_in_a_data_sm_is_answered_data_sm_resp_and_received(smsc, bound, live, account):
    answer = smsc_sends(smsc, "data_sm", **addresses(), esm_class=0x00, data_coding=0x00,
                        message_payload=gsm7_encode("STOP"))

    assert answer == ("data_sm_resp", 0)
    message = inbound()
    assert (message.body, message.from_number, message.to, message.carrier) == ("STOP", PHONE, SEED["from"],
                                                                               "smsc-test")
    assert CarrierInbound.objects.get(message=message).raw["message_payload"] == gsm7_encode("STOP").hex()
    assert OptOut.objects.filter(account=account, phone_number=PHONE).exists()


@pytest.mark.parametrize("esm_class", [0x04, 0x00], ids=["receipt-esm-class", "receipt-tlvs-only"])
def test_a_receipt_in_a_data_sm_is_answered_data_sm_resp_and_applied(smsc, bound, live, esm_class):
    message = send(live, to=NO_RECEIPT)
    [submit] = smsc.submits_to(NO_RECEIPT)

    answer = smsc_sends(smsc, "data_sm", **addresses(NO_RECEIPT[1:], SEED["from"][1:]), esm_class=esm_class,
                        data_coding=0, receipted_message_id=submit["message_id"], message_state=2)

    assert answer == ("data_sm_resp", 0)
    assert final(message).status == "delivered"
    assert not Message.objects.filter(direction="inbound").exists()


# --- Addresses ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("country, source, source_ton, destination, dest_ton", [
    ("", "18045550199", 1, "18045550142", 0),  # the case seen: TON unknown, international digits
    ("US", "8045550199", 2, "8045550142", 2),  # national numbers of the carrier's country
    ("US", "18045550199", 0, "8045550142", 0),
    ("us", "+18045550199", 0, "+18045550142", 0),  # in E.164 whatever the TON: as on main
], ids=["unknown-ton", "national", "unknown-ton-national-digits", "e164"])
def test_a_stop_to_a_sender_in_any_numbering_opts_the_phone_out(smsc, carrier, start_bind, live, account, country,
                                                               source, source_ton, destination, dest_ton):
    carrier.settings["country"] = country
    carrier.save()
    start_bind(carrier)

    answer = smsc_sends(smsc, "deliver_sm", **addresses(source, destination, source_ton=source_ton,
                                                        dest_ton=dest_ton), short_message=b"STOP")

    assert answer == ("deliver_sm_resp", 0)
    message = inbound()
    assert (message.from_number, message.to, message.account_id) == (PHONE, SEED["from"], account.pk)
    assert OptOut.objects.filter(account=account, livemode=True, phone_number=PHONE).exists()
    refused = live.post("/v1/messages", {"from": SEED["from"], "to": PHONE, "body": "Hello"}, format="json")
    assert refused.json()["error"]["code"] == "recipient_opted_out"


# --- Unknown numbers ------------------------------------------------------------------------------------
def test_an_inbound_message_to_a_number_no_account_has_is_kept(smsc, bound, live):
    answer = smsc_sends(smsc, "deliver_sm", **addresses(PHONE[1:], "18005550100"), short_message=b"STOP")

    assert answer == ("deliver_sm_resp", 0)
    kept = wait_until(lambda: CarrierInbound.objects.first(), what="the message kept")
    assert (kept.carrier, kept.from_number, kept.to, kept.body, kept.message) == (
        "smsc-test", PHONE, "+18005550100", "STOP", None)
    assert kept.raw["short_message"] == b"STOP".hex() and kept.raw["destination_addr"] == "18005550100"
    assert not Message.objects.exists() and not OptOut.objects.exists()


# --- Malformed PDUs ---------------------------------------------------------------------------------------
def pdu(command_id: int, body: bytes, sequence: int) -> bytes:
    return struct.pack(">LLLL", 16 + len(body), command_id, 0, sequence) + body


HEAD = b"\x00" + b"\x01\x01" + b"18045550199\x00" + b"\x01\x01" + b"18045550142\x00"  # service_type, addresses
DELIVER_SM_REST = bytes((0, 0, 0)) + b"\x00\x00" + bytes((0, 0, 0, 0))  # esm_class ... sm_default_msg_id


@pytest.mark.parametrize("command_id, body", [
    (0x05, HEAD),  # cut after destination_addr
    (0x05, HEAD[:9]),  # cut inside source_addr: no NUL
    (0x05, HEAD + DELIVER_SM_REST + bytes((20,)) + b"STOP"),  # sm_length past the end
    (0x05, HEAD + DELIVER_SM_REST + bytes((4,)) + b"STOP" + b"\x04\x24"),  # half a TLV header
    (0x103, HEAD + bytes((0, 0, 0)) + struct.pack(">HH", 0x0424, 40) + b"STOP"),  # data_sm: payload past the end
], ids=["deliver_sm-cut", "deliver_sm-no-nul", "sm_length-past-end", "half-a-tlv", "data_sm-tlv-past-end"])
def test_a_request_whose_body_does_not_hold_its_fields_gets_generic_nack_invalid_length(smsc, bound, live,
                                                                                         command_id, body):
    sequence = 0x7F000001
    smsc.post("/raw", {"hex": pdu(command_id, body, sequence).hex()})

    assert answer_to(smsc, sequence) == ("generic_nack", ESME_RINVCMDLEN)
    assert smsc_sends(smsc, "deliver_sm", **addresses(), short_message=b"Still there?") == ("deliver_sm_resp", 0)
    assert [m.body for m in Message.objects.all()] == ["Still there?"]


# --- The bind --------------------------------------------------------------------------------------------
def test_a_bind_that_cannot_connect_says_why(smsc, start_bind):
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    carrier = make_carrier(smsc, name="smsc-nowhere")
    carrier.settings["port"] = port
    carrier.save()

    start_bind(carrier, state="connecting")

    assert SmppBind.objects.get(carrier=carrier).last_error == (
        f"Cannot bind to 127.0.0.1:{port}: Connection refused (ConnectionRefusedError, errno 111).")
