"""The SMPP pieces that need no SMSC: parts and UDH, inbound decoding, addresses, receipts and the
status tables, the receipt book of multi-part messages, what throttling holds back, and reading PDUs
smpplib would choke on."""

from dataclasses import dataclass
import socket
import struct
import threading

import pytest
from smpplib import consts as smpp_consts
from smpplib.client import Client

from messaging import statuses
from messaging.carriers.smpp import (
    COMMAND_STATUS_ERRORS, RECEIPT_STATES, address_from_smpp, command_status_error, concatenation_of,
    concatenation_udh, decode_receipt, decode_short_message, delivery_report, is_delivery_receipt, parse_receipt,
    smpp_address, split_udh, status_name, submit_parts,
)
from messaging.carriers.smpp_parts import InboundAssembler, Outbox, ReceiptBook
from messaging.carriers.smpp_wire import BindConfig, BindRefused, Link, UnknownPdu, failure_reason, parse_pdu
from messaging.encoding import gsm7_decode, gsm7_encode, split_parts
from messaging.models import Carrier, SmppSubmission

EMOJI = "\U0001F600"


def text_of(part) -> str:
    _, data = split_udh(part.short_message) if part.esm_class & 0x40 else (b"", part.short_message)
    return gsm7_decode(data) if part.data_coding == 0 else data.decode("utf-16-be")


# --- Parts --------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, data_coding, short_message", [
    ("Hello", 0x00, b"Hello"),
    ("€5 {x}", 0x00, bytes.fromhex("1b6535201b28781b29")),
    ("ж" + EMOJI, 0x08, "ж".encode("utf-16-be") + bytes.fromhex("d83dde00")),  # a surrogate pair
    ("a" * 160, 0x00, b"a" * 160),
    ("ж" * 70, 0x08, "ж".encode("utf-16-be") * 70),
])
def test_a_message_that_fits_is_one_part_without_udh(body, data_coding, short_message):
    [part] = submit_parts(body, reference=1)
    assert (part.data_coding, part.esm_class, part.short_message) == (data_coding, 0x00, short_message)


@pytest.mark.parametrize("body", [
    "a" * 161,
    "a" * 152 + "€" + "a" * 10,  # the escape pair would straddle the part boundary
    "ж" * 66 + EMOJI + "ж" * 10,  # so would the surrogate pair
    "€" * 400,
    EMOJI * 100,
])
def test_a_long_message_is_split_where_split_parts_says_with_a_concatenation_udh(body):
    parts = submit_parts(body, reference=0x1A2)
    expected = split_parts(body)

    assert len(parts) == len(expected) > 1
    for sequence, (part, text) in enumerate(zip(parts, expected), start=1):
        assert part.esm_class == 0x40
        assert part.short_message[:6] == bytes((0x05, 0x00, 0x03, 0xA2, len(expected), sequence))
        assert text_of(part) == text
        assert len(part.short_message) <= 6 + 153 if part.data_coding == 0 else len(part.short_message) <= 140
    assert "".join(text_of(part) for part in parts) == body


def test_no_part_ends_inside_an_escape_or_a_surrogate_pair():
    for part in submit_parts(("a" * 152 + "€") * 3, reference=1):
        assert not split_udh(part.short_message)[1].endswith(b"\x1b")
    for part in submit_parts(("ж" * 66 + EMOJI) * 3, reference=1):
        last_unit = split_udh(part.short_message)[1][-2:]
        assert not 0xD800 <= int.from_bytes(last_unit, "big") <= 0xDBFF


def test_concatenation_udh_and_its_reading():
    assert concatenation_udh(300, 3, 2) == bytes.fromhex("0500032c0302")  # the 8-bit reference wraps
    assert concatenation_of(bytes.fromhex("0003") + bytes((7, 3, 2))) == (7, 3, 2)
    assert concatenation_of(bytes.fromhex("0804") + bytes((0x12, 0x34, 4, 1))) == (0x1234, 4, 1)
    assert concatenation_of(bytes.fromhex("0504" "0b840000" "00030702" "01")) == (7, 2, 1)  # after a port element
    assert concatenation_of(bytes.fromhex("0504" "0b840000")) is None
    assert split_udh(bytes.fromhex("050003070201") + b"hi") == (bytes.fromhex("0003070201"), b"hi")


# --- Inbound ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("data, data_coding, text", [
    (gsm7_encode("STOP €"), 0x00, "STOP €"),
    (b"STOP", 0x01, "STOP"),
    ("Grüße".encode("latin-1"), 0x03, "Grüße"),
    (("Привет " + EMOJI).encode("utf-16-be"), 0x08, "Привет " + EMOJI),
    (gsm7_encode("Hi"), 0xF1, "Hi"),  # message class group, GSM alphabet
    (b"Hi", 0xF5, "Hi"),  # message class group, 8-bit data
    ("Да".encode("utf-16-be"), 0x18, "Да"),  # general data coding group, UCS-2
    (gsm7_encode("@"), 0x10, "@"),
    (b"STOP\x00", 0x03, "STOP"),  # the C string terminator some SMSCs leave in is no text
    ("STOP\x00".encode("utf-16-be"), 0x08, "STOP"),
    (b"Hi\x00A", 0x03, "Hi\x00A"),  # within the text it stays, for storable to store
    (gsm7_encode("Hi @"), 0x00, "Hi @"),  # in the GSM alphabet 0x00 is @
])
def test_inbound_text_is_decoded_by_its_data_coding(data, data_coding, text):
    assert decode_short_message(data, data_coding) == text


@pytest.mark.parametrize("value, address", [
    ("+18045550142", (1, 1, "18045550142")),
    ("12345", (3, 0, "12345")),
    ("Mittis", (5, 0, "Mittis")),
])
def test_our_addresses_in_smpp(value, address):
    assert smpp_address(value) == address


@pytest.mark.parametrize("address, ton, npi, country, ours", [
    ("18045550199", 1, 1, "", "+18045550199"),
    ("+18045550199", 1, 1, "", "+18045550199"),
    ("+18045550199", 0, 1, "", "+18045550199"),
    ("18045550199", 0, 1, "", "+18045550199"),  # unknown TON: valid with its +
    ("18045550199", 0, 0, "", "+18045550199"),
    ("8045550199", 2, 1, "", "8045550199"),  # national, no country: not ours to guess
    ("8045550199", 2, 1, "US", "+18045550199"),
    ("8045550199", 0, 1, "us", "+18045550199"),  # unknown TON: valid in the carrier's country
    ("07400123456", 2, 1, "GB", "+447400123456"),
    ("07400123456", 0, 1, "GB", "+447400123456"),
    ("00447400123456", 2, 1, "GB", "+447400123456"),  # dialled with the country's international prefix
    ("447400123456", 0, 1, "GB", "+447400123456"),
    ("8045550199", 0, 1, "", "8045550199"),  # valid nowhere we can tell
    ("12345", 0, 1, "US", "12345"),  # a short code, whatever its TON
    ("12345", 3, 0, "US", "12345"),
    ("18045550199", 9, 1, "US", "18045550199"),  # another TON
    ("18045550199", 1, 9, "US", "18045550199"),  # a private numbering plan
    ("Mittis", 5, 0, "US", "Mittis"),
    ("8045550199", 2, 1, "XX", "8045550199"),  # a country phonenumbers does not know
])
def test_addresses_from_smpp(address, ton, npi, country, ours):
    assert address_from_smpp(address, ton, npi, country) == ours


def test_the_assembler_joins_parts_in_any_order_and_lets_an_incomplete_message_go_after_its_ttl():
    assembler = InboundAssembler(ttl=10)
    key = ("+18045550199", "+18045550142", 7, 3)
    assert assembler.add(key, total=3, sequence=3, text="c", raw={"n": 3}, now=0) is None
    assert assembler.add(key, total=3, sequence=1, text="a", raw={"n": 1}, now=1) is None
    assert assembler.add(key, total=3, sequence=2, text="b", raw={"n": 2}, now=2) == ("abc", [{"n": 3}, {"n": 1},
                                                                                              {"n": 2}])
    other = ("+18045550199", "+18045550142", 8, 2)
    assembler.add(other, total=2, sequence=2, text="end", raw={}, now=5)
    assert assembler.expired(now=14) == []
    assert assembler.expired(now=16) == [(other, "end", [{}])]
    assert assembler.expired(now=30) == []


# --- Receipts -------------------------------------------------------------------------------------
RECEIPT = "id:0000010005 sub:001 dlvrd:001 submit date:2611290300 done date:2611290301 stat:DELIVRD err:000 text:id:9 hi"


def test_a_receipt_is_read_from_its_tlvs_first_then_its_text():
    assert parse_receipt(RECEIPT) == parse_receipt(RECEIPT, receipted_message_id="", message_state=None)
    from_text = parse_receipt(RECEIPT)
    assert (from_text.message_id, from_text.stat, from_text.err) == ("0000010005", "DELIVRD", "000")
    from_tlvs = parse_receipt(RECEIPT, receipted_message_id="ABC", message_state=5)
    assert (from_tlvs.message_id, from_tlvs.stat) == ("ABC", "UNDELIV")
    lowercase = parse_receipt("ID:x1 SUB:001 stat:undeliv ERR:012")
    assert (lowercase.message_id, lowercase.stat, lowercase.err) == ("x1", "UNDELIV", "012")
    assert parse_receipt("garbage").stat == "UNKNOWN"


@pytest.mark.parametrize("stat, err, status, error_code, carrier_status", [
    ("DELIVRD", "000", statuses.DELIVERED, "", "DELIVRD"),
    ("UNDELIV", "001", statuses.UNDELIVERED, "unknown_error", "UNDELIV err:001"),
    ("EXPIRED", "000", statuses.UNDELIVERED, "unreachable", "EXPIRED"),
    ("DELETED", "000", statuses.UNDELIVERED, "unknown_error", "DELETED"),
    ("REJECTD", "069", statuses.FAILED, "carrier_rejected", "REJECTD err:069"),
    ("ACCEPTD", "000", statuses.SENT, "", "ACCEPTD"),
    ("ENROUTE", "000", statuses.SENT, "", "ENROUTE"),
    ("UNKNOWN", "000", statuses.SENT, "", "UNKNOWN"),
    ("WEIRD", "", statuses.SENT, "", "WEIRD"),  # a state we do not know changes nothing
])
def test_receipt_states_map_to_our_statuses(stat, err, status, error_code, carrier_status):
    receipt = parse_receipt(f"id:1 stat:{stat} err:{err}")
    report = delivery_report(receipt, carrier_message_id="1", reference="msg_x")

    assert (report.status, report.error_code, report.carrier_status, report.reference) == (
        status, error_code, carrier_status, "msg_x")
    assert bool(report.error_message) == bool(error_code)
    assert stat == "WEIRD" or stat in RECEIPT_STATES


@pytest.mark.parametrize("esm_class, receipt", [
    (0x04, True), (0x20, True), (0x00, False), (0x40, False), (0x08, False), (0x44, True),
])
def test_which_deliver_sm_is_a_receipt(esm_class, receipt):
    assert is_delivery_receipt(esm_class) is receipt


def test_a_pdu_with_both_receipt_tlvs_is_a_receipt_whatever_its_esm_class():
    assert is_delivery_receipt(0x00, receipted_message_id="A1", message_state=2)
    assert not is_delivery_receipt(0x00, receipted_message_id="A1")
    assert not is_delivery_receipt(0x00, message_state=2)


HEAD = b"id:A1 sub:001 dlvrd:001 submit date:2612070900 done date:2612070901 stat:DELIVRD err:000 text:"


@pytest.mark.parametrize("data, data_coding, text", [
    (HEAD + gsm7_encode("help@acme"), 0x00, HEAD.decode() + "help@acme"),
    (HEAD + "Hello".encode("utf-16-be"), 0x08, HEAD.decode() + "Hello"),
    (HEAD + "Hé".encode("utf-16-be")[:3], 0x08, HEAD.decode() + "H\ufffd"),  # cut mid-character
    (HEAD + b"id_\x5f", 0x03, HEAD.decode() + "id__"),
    ((HEAD.decode() + "Hello").encode("utf-16-be"), 0x08, HEAD.decode() + "Hello"),  # all of it in UCS-2
    (b"id:x_1 stat:DELIVRD", 0x00, "id:x_1 stat:DELIVRD"),  # the fields stay ASCII: _ is no GSM \xa7
])
def test_a_receipts_fields_are_ascii_and_its_quoted_text_in_its_data_coding(data, data_coding, text):
    assert decode_receipt(data, data_coding) == text


def receipt(message_id, stat):
    return parse_receipt(f"id:{message_id} stat:{stat} err:000")


@pytest.fixture
def sent(db):
    """`sent(part_ids, reference)`: a submission the SMSC accepted in those parts, remembered as the bind does."""
    carrier = Carrier.objects.create(name="smsc-book", kind=Carrier.SMPP)

    def _sent(part_ids, reference):
        submission = SmppSubmission.objects.create(carrier=carrier, reference=reference, sender="+18045550142",
                                                   to="+18045550199", body="hi", status=SmppSubmission.ACCEPTED,
                                                   carrier_message_id=part_ids[0])
        ReceiptBook(carrier.pk).remember(submission.pk, part_ids)
    _sent.carrier = carrier
    return _sent


def test_the_receipt_book_lands_every_part_on_the_message_and_delivers_it_with_the_last(sent):
    sent(["A1", "A2", "A3"], "msg_a")
    sent(["B1"], "msg_b")
    book = ReceiptBook(sent.carrier.pk)

    assert book.report(receipt("A2", "DELIVRD")) is None
    assert ReceiptBook(sent.carrier.pk).report(receipt("A1", "DELIVRD")) is None  # a bind restarted meanwhile
    last = book.report(receipt("A3", "DELIVRD"))
    assert (last.carrier_message_id, last.status, last.reference) == ("A1", statuses.DELIVERED, "msg_a")
    single = book.report(receipt("B1", "DELIVRD"))
    assert (single.carrier_message_id, single.reference) == ("B1", "msg_b")


def test_the_receipt_book_fails_a_message_on_its_first_failed_part_and_passes_strangers_through(sent):
    sent(["A1", "A2"], "msg_a")
    book = ReceiptBook(sent.carrier.pk)

    failed = book.report(receipt("A2", "UNDELIV"))
    assert (failed.carrier_message_id, failed.status, failed.reference) == ("A1", statuses.UNDELIVERED, "msg_a")
    stranger = book.report(receipt("Z9", "DELIVRD"))
    assert (stranger.carrier_message_id, stranger.reference) == ("Z9", "")
    other_carrier = Carrier.objects.create(name="smsc-other", kind=Carrier.SMPP)
    assert ReceiptBook(other_carrier.pk).report(receipt("A1", "DELIVRD")).reference == ""


def test_an_id_the_smsc_gave_again_is_the_newest_parts(sent):
    sent(["0000010000"], "msg_old")
    sent(["0000010001", "0000010000"], "msg_new")  # the SMSC restarted and began its ids again

    report = ReceiptBook(sent.carrier.pk).report(receipt("0000010000", "UNDELIV"))

    assert (report.carrier_message_id, report.reference) == ("0000010001", "msg_new")


@pytest.mark.parametrize("tlv, carrier_status, error_message", [
    (b"\x03\x00\x1b", "UNDELIV err:027 (GSM error 27)",
     "The carrier could not deliver the message (err 027; GSM error 27)."),
    (b"\x07\x00\x0b", "UNDELIV err:027 (SMPP error ESME_RINVDSTADR)",
     "The carrier could not deliver the message (err 027; SMPP error ESME_RINVDSTADR)."),
    (b"\x08\x01\x00", "UNDELIV err:027 (SMSC-specific error 256)",
     "The carrier could not deliver the message (err 027; SMSC-specific error 256)."),
    (b"\x03\x00", "UNDELIV err:027 (network error 0x0300)",
     "The carrier could not deliver the message (err 027; network error 0x0300)."),
    (None, "UNDELIV err:027", "The carrier could not deliver the message (err 027)."),
])
def test_a_receipts_network_error_code_is_part_of_the_error(tlv, carrier_status, error_message):
    """SMPP 3.4 5.3.2.31: the network type, then that network's 2-octet error code."""
    report = delivery_report(parse_receipt("id:1 stat:UNDELIV err:027", network_error_code=tlv), carrier_message_id="1")

    assert (report.carrier_status, report.error_message) == (carrier_status, error_message)


# --- Throttling -------------------------------------------------------------------------------------
@dataclass(eq=False)
class Part:
    destination: str
    not_before: float = 0.0
    held: str = ""
    answered: bool = False
    error: str = ""


def test_a_full_queue_holds_back_its_destination_and_no_other():
    outbox = Outbox(tps=0)
    busy, other = Part("15005550177"), Part("18045550199")
    outbox.add([busy])
    assert outbox.take(now=0.0) is busy

    outbox.put_back(busy, "ESME_RMSGQFUL", now=0.0, pause=1.0)
    later_to_busy = Part("15005550177")
    outbox.add([later_to_busy, other])

    assert outbox.take(now=0.1) is other
    assert outbox.take(now=0.2) is None and outbox.wait(now=0.2) == pytest.approx(0.8)
    assert [outbox.take(now=1.0), outbox.take(now=1.0)] == [busy, later_to_busy]


def test_rthrottled_halves_the_sessions_pace_for_the_pause():
    outbox = Outbox(tps=10)
    parts = [Part(f"1804555{n:04d}") for n in range(12)]
    outbox.add(parts)
    assert [outbox.take(now=0.0) for _ in range(4)] == parts[:4]

    outbox.put_back(parts[3], "ESME_RTHROTTLED", now=0.0, pause=2.5)  # 4 in the last second: 2 a second now

    assert outbox.take(now=1.0) is parts[4] and outbox.take(now=1.0) is parts[5] and outbox.take(now=1.0) is None
    assert outbox.take(now=2.0) is parts[6] and outbox.take(now=2.0) is parts[7] and outbox.take(now=2.0) is None
    assert [outbox.take(now=3.0) for _ in range(3)] == [parts[3], parts[8], parts[9]]  # the pace is over


def test_parts_throttling_holds_back_are_given_up_with_its_status():
    outbox = Outbox(tps=0)
    busy, queued_behind, free = Part("15005550177"), Part("15005550177"), Part("18045550199")
    outbox.add([busy, queued_behind])
    outbox.take(now=0.0)
    outbox.put_back(busy, "ESME_RMSGQFUL", now=0.0, pause=5.0)

    outbox.give_up([busy, queued_behind, free], now=1.0)

    assert [(p.answered, p.error) for p in (busy, queued_behind, free)] == [
        (True, "ESME_RMSGQFUL"), (True, "ESME_RMSGQFUL"), (False, "")]
    assert not outbox


# --- command_status -------------------------------------------------------------------------------
@pytest.mark.parametrize("status, name, code, temporary", [
    (0x58, "ESME_RTHROTTLED", "carrier_throttled", True),
    (0x14, "ESME_RMSGQFUL", "carrier_throttled", True),
    (0x08, "ESME_RSYSERR", "carrier_unavailable", True),
    (0x0B, "ESME_RINVDSTADR", "invalid_phone_number", False),
    (0x0A, "ESME_RINVSRCADR", "invalid_sender", False),
    (0x01, "ESME_RINVMSGLEN", "carrier_rejected", False),
    (0x45, "ESME_RSUBMITFAIL", "carrier_rejected", False),
    (0xFF, "ESME_RUNKNOWNERR", "carrier_rejected", False),
    (0x0400, "0x00000400", "carrier_rejected", False),  # vendor-specific: final, never retried in a loop
])
def test_command_status_names_and_what_they_mean_for_the_message(status, name, code, temporary):
    assert status_name(status) == name
    assert command_status_error(name) == (code, temporary)


def test_every_status_in_the_error_table_is_an_smpp_status():
    names = {name.removeprefix("SMPP_") for name in vars(smpp_consts) if name.startswith("SMPP_ESME_")}
    assert set(COMMAND_STATUS_ERRORS) <= names


# --- Reading PDUs -------------------------------------------------------------------------------
def deliver_sm(short_message: bytes, tlvs: bytes = b"", *, esm_class=0x04, sequence=9) -> bytes:
    body = (b"\x00" + b"\x01\x01" + b"15005550102\x00" + b"\x01\x01" + b"18045550142\x00"
            + bytes((esm_class, 0, 0)) + b"\x00\x00" + bytes((0, 0, 0, 0)) + bytes((len(short_message),))
            + short_message + tlvs)
    return struct.pack(">LLLL", 16 + len(body), 0x00000005, 0, sequence) + body


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


@pytest.fixture
def client():
    return Client("127.0.0.1", 1, allow_unknown_opt_params=True)  # numbers PDUs; never connected


def test_a_receipt_with_tlvs_smpplib_does_not_expect_is_read(client):
    raw = deliver_sm(RECEIPT.encode(), tlv(0x001E, b"ABC")  # receipted_message_id without its NUL
                     + tlv(0x0427, b"\x02") + tlv(0x0423, b"\x03\x00\x01")
                     + tlv(0x0420, b"\x01")  # dpf_result, which smpplib's deliver_sm does not declare
                     + tlv(0x1401, b"vendor"))

    pdu = parse_pdu(raw, client)

    assert (pdu.command, pdu.sequence, pdu.esm_class, pdu.message_state) == ("deliver_sm", 9, 0x04, 2)
    assert pdu.receipted_message_id == b"ABC" and pdu.short_message == RECEIPT.encode()
    assert pdu.network_error_code == b"\x03\x00\x01"


def test_a_pdu_smpplib_cannot_read_is_kept_as_unknown(client):
    raw = struct.pack(">LLLL", 16, 0x00000111, 0, 5)  # broadcast_sm, an SMPP 5.0 command 3.4 lacks

    pdu = parse_pdu(raw, client)

    assert isinstance(pdu, UnknownPdu) and (pdu.command_id, pdu.sequence, pdu.nack_status) == (0x111, 5, 0x03)


@pytest.mark.parametrize("command_id, body, readable", [
    (0x05, deliver_sm(b"STOP")[16:], True),
    (0x05, deliver_sm(b"STOP", tlv(0x0424, b"more"))[16:], True),
    (0x05, deliver_sm(b"STOP")[16:-5], False),  # sm_length past the end
    (0x05, deliver_sm(b"STOP")[16:40], False),  # cut inside the addresses
    (0x05, deliver_sm(b"STOP", b"\x04\x24\x00")[16:], False),  # a TLV header cut short
    (0x05, deliver_sm(b"STOP", tlv(0x0424, b"more"))[16:-1], False),  # a TLV cut short
    (0x103, b"\x00\x01\x01123\x00\x01\x01456\x00\x00\x00\x00" + tlv(0x0424, b"Hi"), True),  # data_sm
    (0x103, b"\x00\x01\x01123\x00\x01\x01456\x00\x00\x00", False),  # its data_coding missing
    (0x102, b"\x01\x01123\x00\x01\x01456\x00", True),  # alert_notification
    (0x102, b"\x01\x01123\x00\x01\x01", False),
])
def test_a_request_whose_body_does_not_hold_its_fields_is_nacked_invalid_length(client, command_id, body, readable):
    pdu = parse_pdu(struct.pack(">LLLL", 16 + len(body), command_id, 0, 7) + body, client)

    assert isinstance(pdu, UnknownPdu) is not readable
    if not readable:
        assert (pdu.command_id, pdu.sequence, pdu.nack_status) == (command_id, 7, 0x02)


def test_a_data_sm_is_read_like_a_deliver_sm(client):
    body = (b"\x00\x01\x0118045550199\x00\x01\x0118045550142\x00\x04\x00\x00" + tlv(0x0424, b"hi")
            + tlv(0x001E, b"A1") + tlv(0x0427, b"\x02"))

    pdu = parse_pdu(struct.pack(">LLLL", 16 + len(body), 0x103, 0, 8) + body, client)

    assert (pdu.command, pdu.esm_class, pdu.short_message, pdu.message_payload) == ("data_sm", 0x04, None, b"hi")
    assert (pdu.receipted_message_id, pdu.message_state, pdu.source_addr) == (b"A1", 2, b"18045550199")


@pytest.mark.parametrize("error, reason", [
    (ConnectionRefusedError(111, "Connection refused"), "Connection refused (ConnectionRefusedError, errno 111)"),
    (ConnectionError("The SMSC closed the connection."), "The SMSC closed the connection (ConnectionError)"),
    (TimeoutError(), "no reason given (TimeoutError)"),
])
def test_a_connection_failure_always_has_a_reason(error, reason):
    assert failure_reason(error) == reason


# --- The link: our socket, smpplib's PDUs --------------------------------------------------------
def pdu_bytes(command_id: int, sequence: int, status: int = 0, body: bytes = b"") -> bytes:
    return struct.pack(">LLLL", 16 + len(body), command_id, status, sequence) + body


@pytest.fixture
def smsc_socket():
    """A listening socket on 127.0.0.1 whose one connection `serve(behaviour)` hands to `behaviour(conn)`."""
    listener = socket.create_server(("127.0.0.1", 0))
    threads = []

    def serve(behaviour):
        def run():
            conn, _ = listener.accept()
            with conn:
                behaviour(conn)
        threads.append(threading.Thread(target=run, daemon=True))
        threads[-1].start()
        return listener.getsockname()[1]

    yield serve
    listener.close()
    for thread in threads:
        thread.join(5)


def link_to(port: int, response_timeout: float = 2.0) -> Link:
    return Link(BindConfig(host="127.0.0.1", port=port, system_id="mittis", password="secret", system_type="",
                            service_type="", window=1, tps=0, submit_timeout=5, enquire_link_interval=30,
                            response_timeout=response_timeout, reconnect_min=1, reconnect_max=1))


def read_request(conn) -> tuple[int, int]:
    length, command_id, _, sequence = struct.unpack(">LLLL", conn.recv(16, socket.MSG_WAITALL))
    conn.recv(length - 16, socket.MSG_WAITALL)
    return command_id, sequence


def test_the_link_binds_on_its_answer_and_reads_pdus_however_the_bytes_arrive(smsc_socket):
    done = threading.Event()

    def smsc(conn):
        command_id, sequence = read_request(conn)
        assert command_id == 0x00000009  # bind_transceiver
        answer = pdu_bytes(0x80000009, sequence, body=b"SMSC\x00")
        conn.sendall(answer[:7])  # the answer in two reads, the second with two enquire_links after it
        conn.sendall(answer[7:] + pdu_bytes(0x00000015, 70) + pdu_bytes(0x00000015, 71))
        done.wait(5)

    link = link_to(smsc_socket(smsc))
    try:
        link.open()
        pdus = []
        while len(pdus) < 2:
            pdus += link.receive(2.0)
        assert [(pdu.command, pdu.sequence) for pdu in pdus] == [("enquire_link", 70), ("enquire_link", 71)]
    finally:
        done.set()
        link.close()


@pytest.mark.parametrize("status, name", [(0x0E, "ESME_RINVPASWD"), (0x0D, "ESME_RBINDFAIL")])
def test_a_refused_bind_names_the_smscs_reason(smsc_socket, status, name):
    def smsc(conn):
        _, sequence = read_request(conn)
        conn.sendall(pdu_bytes(0x80000009, sequence, status=status))

    link = link_to(smsc_socket(smsc))
    with pytest.raises(BindRefused) as refused:
        link.open()
    link.close()
    assert refused.value.status == name


@pytest.mark.parametrize("answer", ["nothing", "hang up"])
def test_a_bind_without_an_answer_is_a_connection_error_within_the_response_timeout(smsc_socket, answer):
    done = threading.Event()

    def smsc(conn):
        read_request(conn)
        if answer == "nothing":
            done.wait(5)

    link = link_to(smsc_socket(smsc), response_timeout=0.3)
    try:
        with pytest.raises(OSError):  # what BindRunner retries with backoff
            link.open()
    finally:
        done.set()
        link.close()
