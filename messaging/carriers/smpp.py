"""SMPP 3.4 carriers: the send path, and the protocol tables the send path and the bind share.

A carrier reached over SMPP keeps one long-running session, the bind process
(`python manage.py smpp_bind`, `messaging.carriers.smpp_bind`). A send task does not talk SMPP: it
hands the message to that process through an `SmppSubmission` row and waits for its answer
(`SmppClient.try_send_sms`).

`Carrier.settings` (not secret; `Carrier.credentials["password"]` is the password):

| key                     | meaning                                                              | default |
|-------------------------|----------------------------------------------------------------------|---------|
| host, port              | the SMSC                                                             |         |
| system_id, system_type  | the login the carrier gave us                                        | -, ""   |
| service_type            | submit_sm `service_type`, if the carrier asks for one                | ""      |
| window                  | submit_sm PDUs in flight without their answer                        | 10      |
| submit_timeout          | seconds a send waits for the bind's answer                           | 10      |
| enquire_link_interval   | seconds between keep-alives                                          | 30      |
| response_timeout        | seconds an answer to our PDU may take before the session is dropped  | 10      |
| reconnect_min/max       | seconds between reconnects, doubling from min to max                 | 1, 60   |
| country                 | ISO 3166 code (US, GB) the SMSC's national numbers belong to         | ""      |

Inbound addresses (`address_from_smpp`) become E.164 before a sender or an opt-out is looked up. With a
numbering plan (NPI) of unknown or ISDN:

| TON                  | address                                                           | becomes             |
|----------------------|-------------------------------------------------------------------|---------------------|
| any                  | `+` and digits                                                    | itself              |
| 1 international      | digits                                                            | `+` and the digits  |
| 2 national           | digits valid as a number of `country`                             | its E.164           |
| 0 unknown            | digits valid as a number of `country`, else valid with a `+`      | its E.164           |

Anything else stays as sent: a short code, an alphanumeric name, another TON or NPI, a national number that is
valid nowhere we can tell. An inbound message whose `destination_addr` is then no sender of an active account is
kept for staff all the same (`message_receive`).

`Carrier.tps` caps the submit_sm PDUs per second (each part of a long message is one PDU).

The protocol: SMPP 3.4, Issue 1.2 (https://smpp.org/SMPP_v3_4_Issue1_2.pdf); user data headers and
the default alphabet: 3GPP TS 23.040 9.2.3.24 and TS 23.038 (https://www.3gpp.org/dynareport/23040.htm,
https://www.3gpp.org/dynareport/23038.htm).
"""

from dataclasses import dataclass
from datetime import timedelta
import re
import time

from django.db import connection
from django.utils import timezone
from smpplib import consts as smpp_consts

from messaging import statuses
from messaging.carriers.base import (
    CarrierRejectedError, CarrierTemporaryError, DeliveryReport, OutboundSms, SendResult, SmsClient,
)
from messaging.encoding import GSM7, analyze, gsm7_decode, gsm7_encode, split_parts
from mittis.numbers import valid_e164

# --- Settings -----------------------------------------------------------------------------------
DEFAULT_WINDOW = 10
DEFAULT_SUBMIT_TIMEOUT = 10.0  # a submit answered in more than this is very likely lost
DEFAULT_ENQUIRE_LINK_INTERVAL = 30.0  # well inside the 60 s idle timers SMSCs commonly apply
DEFAULT_RESPONSE_TIMEOUT = 10.0
DEFAULT_RECONNECT_MIN = 1.0
DEFAULT_RECONNECT_MAX = 60.0

# The bind writes its heartbeat every 5 s (smpp_bind.HEARTBEAT_INTERVAL): three missed and a send no
# longer trusts it, so routing fails over at once instead of waiting for a timeout.
BIND_STALE_AFTER = timedelta(seconds=15)
# How often a send looks for the bind's answer; a submit is typically answered in tens of ms.
ANSWER_POLL_INTERVAL = 0.02

# SmppBind.state, as the bind process writes it.
BIND_CONNECTING, BIND_BOUND, BIND_FAILED = "connecting", "bound", "failed"

# `SmppSubmission.command_status` of a submission left `submitting` when the session dropped after
# (part of) it was written to the SMSC: it may have been sent, so it is neither retried nor failed over.
CONNECTION_LOST = "connection_lost"


def setting(carrier, key: str, default):
    value = (carrier.settings or {}).get(key)
    return default if value in (None, "") else type(default)(value)


# --- Encoding: our parts, our UDH ----------------------------------------------------------------
DATA_CODING_DEFAULT = 0x00  # the SMSC default alphabet, GSM 03.38, one septet per octet (unpacked)
DATA_CODING_IA5 = 0x01
DATA_CODING_LATIN1 = 0x03
DATA_CODING_UCS2 = 0x08  # UCS-2, sent as UTF-16-BE so characters beyond the BMP travel as surrogate pairs
ESM_CLASS_DEFAULT = 0x00
ESM_CLASS_UDHI = 0x40  # short_message begins with a user data header (SMPP 3.4 5.2.12)
REGISTERED_DELIVERY_RECEIPT = 0x01  # a receipt for success and failure alike (5.2.17)
IEI_CONCATENATED_8BIT = 0x00
IEI_CONCATENATED_16BIT = 0x08


@dataclass(frozen=True)
class SubmitPart:
    """One submit_sm's worth of a message: what goes in data_coding, esm_class and short_message."""

    data_coding: int
    esm_class: int
    short_message: bytes


def relative_validity(seconds: int) -> str:
    """An SMPP 3.4 relative time (section 7.1.1): "YYMMDDhhmmsstnnR"."""
    days, rest = divmod(max(1, seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{min(days, 99):02d}{hours:02d}{minutes:02d}{secs:02d}000R"


def concatenation_udh(reference: int, total: int, sequence: int) -> bytes:
    """The 6-byte UDH of a concatenated message with an 8-bit reference (3GPP TS 23.040 9.2.3.24.1)."""
    return bytes((0x05, IEI_CONCATENATED_8BIT, 0x03, reference & 0xFF, total, sequence))


def submit_parts(body: str, *, reference: int) -> list[SubmitPart]:
    """The submit_sm parts of `body`, encoded by us rather than by smpplib, whose splitter can cut
    a GSM escape or a surrogate pair in two. Parts are those `encoding.split_parts` chose, so each
    costs what the price said; `reference` ties the parts of one message together on the handset."""
    if analyze(body).encoding == GSM7:
        data_coding, encode = DATA_CODING_DEFAULT, gsm7_encode
    else:
        data_coding, encode = DATA_CODING_UCS2, _utf16_be
    texts = split_parts(body)
    if len(texts) == 1:
        return [SubmitPart(data_coding, ESM_CLASS_DEFAULT, encode(body))]
    return [SubmitPart(data_coding, ESM_CLASS_UDHI, concatenation_udh(reference, len(texts), sequence) + encode(text))
            for sequence, text in enumerate(texts, start=1)]


def _utf16_be(text: str) -> bytes:
    return text.encode("utf-16-be")


def _alphabet(data_coding: int) -> str:
    """The codec of a data_coding (SMPP 3.4 5.2.19; values from 0x10 on are GSM 03.38 data coding schemes,
    3GPP TS 23.038 4): "gsm", or a Python codec. Latin-1 (0x03) also stands for 8-bit data and values we do
    not know: octets we can only show as they are."""
    if data_coding == DATA_CODING_DEFAULT:
        return "gsm"
    if data_coding == DATA_CODING_IA5:
        return "ascii"
    if data_coding == DATA_CODING_UCS2:
        return "utf-16-be"
    if data_coding & 0xF0 == 0xF0:  # data coding / message class group: bit 2 picks 8-bit data over GSM
        return "latin-1" if data_coding & 0x04 else "gsm"
    if 0x10 <= data_coding < 0x40:  # general data coding group: bits 3-2 are the alphabet
        return {0: "gsm", 2: "utf-16-be"}.get((data_coding >> 2) & 0x03, "latin-1")
    return "latin-1"


def decode_short_message(data: bytes, data_coding: int) -> str:
    """Text from an inbound short_message, by its data_coding. Outside the GSM alphabet, where 0x00 is `@`,
    trailing NULs are the C string terminator some SMSCs leave in, not text (a `STOP` must read STOP); a NUL
    within the text stays, for `base.storable` to store."""
    alphabet = _alphabet(data_coding)
    if alphabet == "gsm":
        return gsm7_decode(data)
    return data.decode(alphabet, errors="replace").rstrip("\x00")


def split_udh(short_message: bytes) -> tuple[bytes, bytes]:
    """(user data header without its length octet, the rest) of a short_message sent with UDHI."""
    if not short_message:
        return b"", b""
    length = short_message[0]
    return short_message[1:1 + length], short_message[1 + length:]


def concatenation_of(udh: bytes) -> tuple[int, int, int] | None:
    """(reference, total, sequence) from a UDH's concatenation element, 8- or 16-bit reference."""
    position = 0
    while position + 2 <= len(udh):
        iei, length = udh[position], udh[position + 1]
        data = udh[position + 2:position + 2 + length]
        if iei == IEI_CONCATENATED_8BIT and len(data) == 3:
            return data[0], data[1], data[2]
        if iei == IEI_CONCATENATED_16BIT and len(data) == 4:
            return (data[0] << 8) | data[1], data[2], data[3]
        position += 2 + length
    return None


# --- Addresses ------------------------------------------------------------------------------------
TON_UNKNOWN, TON_INTERNATIONAL, TON_NATIONAL, TON_NETWORK_SPECIFIC, TON_ALPHANUMERIC = 0x00, 0x01, 0x02, 0x03, 0x05
NPI_UNKNOWN, NPI_ISDN = 0x00, 0x01


def smpp_address(value: str) -> tuple[int, int, str]:
    """(TON, NPI, address) for an E.164 number, a short code or an alphanumeric sender id."""
    if value.startswith("+"):
        return TON_INTERNATIONAL, NPI_ISDN, value[1:]
    if value.isdigit():  # a short code: its meaning is the network's own
        return TON_NETWORK_SPECIFIC, NPI_UNKNOWN, value
    return TON_ALPHANUMERIC, NPI_UNKNOWN, value


def address_from_smpp(address: str, ton: int, npi: int = NPI_ISDN, country: str = "") -> str:
    """Our form of an address an SMSC sent, by the rules of the settings table: E.164 where its TON says it
    is international, or where it is a valid number of the carrier's `country` (national or unknown TON) or,
    with an unknown TON, valid once given its `+`. Anything else is kept as sent: a short code, a name, or a
    national number whose country we do not know."""
    address = address.strip()
    digits = address.removeprefix("+")
    if not digits.isdigit() or npi not in (NPI_UNKNOWN, NPI_ISDN):
        return address
    if address.startswith("+") or ton == TON_INTERNATIONAL:
        return "+" + digits
    if ton not in (TON_UNKNOWN, TON_NATIONAL):
        return address
    national = valid_e164(digits, country.upper()) if country else None
    if national or ton == TON_NATIONAL:
        return national or address
    return valid_e164("+" + digits) or address


# --- command_status -------------------------------------------------------------------------------
# SMPP 3.4 5.1.3, "command_status": https://smpp.org/SMPP_v3_4_Issue1_2.pdf
STATUS_NAMES: dict[int, str] = {
    value: name.removeprefix("SMPP_") for name, value in vars(smpp_consts).items() if name.startswith("SMPP_ESME_")
}
ESME_ROK = 0x00000000
ESME_RX_T_APPN = 0x00000064  # our answer to a deliver_sm we could not store now: the SMSC retries it
ESME_RINVCMDLEN = 0x00000002  # our generic_nack to a request whose body does not hold its fields
ESME_RINVCMDID = 0x00000003


def status_name(command_status: int) -> str:
    return STATUS_NAMES.get(command_status, f"0x{command_status:08X}")


def status_description(name: str) -> str:
    value = next((v for v, n in STATUS_NAMES.items() if n == name), None)
    return smpp_consts.DESCRIPTIONS.get(value, name) if value is not None else name


# What a refused submit_sm means for the message: (our error code, temporary). A temporary status
# says the SMSC did not take the PDU and may take it later, so the message can be retried or given
# to another carrier; any other status is final for the message. Statuses not listed are final
# `carrier_rejected`: an unknown refusal retried could loop for ever.
COMMAND_STATUS_ERRORS: dict[str, tuple[str, bool]] = {
    "ESME_RTHROTTLED": ("carrier_throttled", True),  # over the carrier's rate; the bind already retried
    "ESME_RMSGQFUL": ("carrier_throttled", True),  # the SMSC's queue (for this destination) is full
    "ESME_RSYSERR": ("carrier_unavailable", True),
    "ESME_RX_T_APPN": ("carrier_unavailable", True),
    "ESME_RINVBNDSTS": ("carrier_unavailable", True),  # the SMSC no longer considers us bound
    "ESME_RINVDSTADR": ("invalid_phone_number", False),
    "ESME_RINVDSTTON": ("invalid_phone_number", False),
    "ESME_RINVDSTNPI": ("invalid_phone_number", False),
    "ESME_RINVSRCADR": ("invalid_sender", False),
    "ESME_RINVSRCTON": ("invalid_sender", False),
    "ESME_RINVSRCNPI": ("invalid_sender", False),
    "ESME_RX_P_APPN": ("carrier_rejected", False),
    "ESME_RX_R_APPN": ("carrier_rejected", False),
    "ESME_RSUBMITFAIL": ("carrier_rejected", False),
}
TEMPORARY_STATUSES = frozenset(name for name, (_, temporary) in COMMAND_STATUS_ERRORS.items() if temporary)
THROTTLING_STATUSES = frozenset({"ESME_RTHROTTLED", "ESME_RMSGQFUL"})


def command_status_error(name: str) -> tuple[str, bool]:
    return COMMAND_STATUS_ERRORS.get(name, ("carrier_rejected", False))


# --- Delivery receipts ----------------------------------------------------------------------------
# SMPP 3.4 Appendix B, "Delivery Receipt Format" (the text), and 5.2.28, "message_state" (the TLV),
# https://smpp.org/SMPP_v3_4_Issue1_2.pdf. The `err` field is the network's or the SMSC's own.
# The final states a receipt reports, and what they make of the message. `sent` changes nothing: the
# report is recorded and the message waits for a final one. EXPIRED (the SMSC's validity period ran
# out) is `undelivered`: our own `expired` is for messages we never sent.
RECEIPT_STATES: dict[str, tuple[str, str]] = {
    "DELIVRD": (statuses.DELIVERED, ""),
    "UNDELIV": (statuses.UNDELIVERED, "unknown_error"),
    "EXPIRED": (statuses.UNDELIVERED, "unreachable"),  # the phone stayed out of reach for the validity period
    "DELETED": (statuses.UNDELIVERED, "unknown_error"),
    "REJECTD": (statuses.FAILED, "carrier_rejected"),
    "ACCEPTD": (statuses.SENT, ""),  # read by the carrier's staff on the subscriber's behalf: not delivered
    "ENROUTE": (statuses.SENT, ""),
    "UNKNOWN": (statuses.SENT, ""),
}
MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD",
                  7: "UNKNOWN", 8: "REJECTD"}
RECEIPT_ERROR_MESSAGES = {
    "UNDELIV": "The carrier could not deliver the message",
    "EXPIRED": "The recipient's phone stayed unreachable until the message's validity period ran out",
    "DELETED": "The carrier deleted the message before delivering it",
    "REJECTD": "The carrier rejected the message",
}
ESM_CLASS_TYPE_MASK = 0x3C  # bits 5-2: the message type of a deliver_sm (5.2.12)
ESM_CLASS_DELIVERY_RECEIPT = 0x04
ESM_CLASS_INTERMEDIATE_NOTIFICATION = 0x20
_RECEIPT_FIELD = re.compile(r"(?:^|\s)(id|stat|err):(\S*)", re.IGNORECASE)
_RECEIPT_TEXT = re.compile(r"\stext:", re.IGNORECASE)
_RECEIPT_FIELD_OCTETS = re.compile(rb"(?:^|\s)(?:id|stat):", re.IGNORECASE)
_RECEIPT_TEXT_OCTETS = re.compile(rb"\stext:", re.IGNORECASE)


def is_delivery_receipt(esm_class: int, *, receipted_message_id: str = "", message_state: int | None = None) -> bool:
    """A receipt by its esm_class or, whatever that says, by the two TLVs only a receipt carries (5.3.2.12,
    5.3.2.35), as some SMSCs send them in a data_sm."""
    return (esm_class & ESM_CLASS_TYPE_MASK in (ESM_CLASS_DELIVERY_RECEIPT, ESM_CLASS_INTERMEDIATE_NOTIFICATION)
            or bool(receipted_message_id and message_state))


def decode_receipt(data: bytes, data_coding: int) -> str:
    """A receipt's text. Its fields are ASCII (Appendix B); after `text:` come the message's first octets,
    copied, in the alphabet of the receipt's data_coding (a GSM `@` is 0x00). A receipt with no ASCII field
    is read in that alphabet whole (an SMSC that wrote it all in UCS-2)."""
    if not _RECEIPT_FIELD_OCTETS.search(data):
        return decode_short_message(data, data_coding)
    text_at = match.end() if (match := _RECEIPT_TEXT_OCTETS.search(data)) else len(data)
    return data[:text_at].decode("latin-1") + decode_short_message(data[text_at:], data_coding)


# 5.3.2.31, "network_error_code": the network type, then that network's own 2-octet error code.
NETWORK_TYPES = {1: "ANSI-136 access denied reason", 2: "IS-95 access denied reason", 3: "GSM",
                 4: "ANSI-136 cause code", 5: "IS-95 cause code", 6: "ANSI-41", 7: "SMPP", 8: "SMSC-specific"}


@dataclass(frozen=True)
class Receipt:
    message_id: str  # the SMSC's id of the part it reports on
    stat: str  # DELIVRD, UNDELIV...
    err: str  # the network's or SMSC's own error code, as text
    text: str
    network_error: str = ""  # the network_error_code TLV, as text: "GSM error 27"


def network_error(value: bytes | None) -> str:
    if not value:
        return ""
    if len(value) != 3:
        return f"network error 0x{value.hex()}"
    network, code = value[0], int.from_bytes(value[1:], "big")
    if network == 7:  # an SMPP command_status
        return f"SMPP error {status_name(code)}"
    return f"{NETWORK_TYPES.get(network, f'network type {network}')} error {code}"


def parse_receipt(text: str, *, receipted_message_id: str = "", message_state: int | None = None,
                  network_error_code: bytes | None = None) -> Receipt:
    """A receipt from its TLVs, falling back to its text (`id:... sub:... stat:DELIVRD err:000`),
    which every SMSC sends and 3.4 gives only as an example format."""
    head = _RECEIPT_TEXT.split(text, maxsplit=1)[0]  # the message's own words follow "text:"
    fields: dict[str, str] = {}
    for key, value in _RECEIPT_FIELD.findall(head):
        fields.setdefault(key.lower(), value)
    stat = MESSAGE_STATES.get(message_state, "") if message_state else ""
    return Receipt(message_id=receipted_message_id.strip() or fields.get("id", ""),
                   stat=(stat or fields.get("stat", "UNKNOWN")).upper(), err=fields.get("err", ""), text=text,
                   network_error=network_error(network_error_code))


def delivery_report(receipt: Receipt, *, carrier_message_id: str, reference: str = "") -> DeliveryReport:
    status, error_code = RECEIPT_STATES.get(receipt.stat, (statuses.SENT, ""))
    has_error = receipt.err.strip("0") != ""
    network = f" ({receipt.network_error})" if receipt.network_error else ""
    carrier_status = (f"{receipt.stat} err:{receipt.err}" if has_error else receipt.stat) + network
    details = [f"err {receipt.err}"] * has_error + [receipt.network_error] * bool(receipt.network_error)
    error_message = ""
    if error_code:
        error_message = RECEIPT_ERROR_MESSAGES[receipt.stat] + (f" ({'; '.join(details)})." if details else ".")
    return DeliveryReport(carrier_message_id=carrier_message_id, status=status, carrier_status=carrier_status[:64],
                          error_code=error_code, error_message=error_message, reference=reference)


# --- The send path ------------------------------------------------------------------------------
def bind_is_live(bind) -> bool:
    return (bind is not None and bind.state == BIND_BOUND and bind.heartbeat_at is not None
            and bind.heartbeat_at >= timezone.now() - BIND_STALE_AFTER)


class SmppClient(SmsClient):
    """Sends through the carrier's bind process: one `SmppSubmission` row per send, answered by it."""

    kind = "smpp"

    def try_send_sms(self, sms: OutboundSms) -> SendResult:
        """Precondition: no transaction is open, or the bind process could not see the row."""
        from messaging.models import SmppBind, SmppSubmission

        bind = SmppBind.objects.filter(carrier=self.carrier).first()
        if not bind_is_live(bind):
            detail = f"{bind.state}: {bind.last_error}" if bind and bind.last_error else (
                bind.state if bind else "never started")
            raise CarrierTemporaryError("carrier_unavailable", f"The SMPP bind of {self.name} is not up ({detail}).",
                                        carrier_status="not_bound")
        if connection.in_atomic_block:
            raise RuntimeError("SmppClient.try_send_sms inside a transaction: the bind would never see the message")
        submission = SmppSubmission.objects.create(carrier=self.carrier, reference=sms.reference, sender=sms.sender,
                                                   to=sms.to, body=sms.body, validity_seconds=sms.validity_seconds)
        rows = SmppSubmission.objects.filter(pk=submission.pk)
        deadline = time.monotonic() + setting(self.carrier, "submit_timeout", DEFAULT_SUBMIT_TIMEOUT)
        while time.monotonic() < deadline:
            time.sleep(ANSWER_POLL_INTERVAL)
            answer = rows.values("status", "carrier_message_id", "command_status").get()
            if answer["status"] != SmppSubmission.PENDING and (
                    answer["status"] != SmppSubmission.SUBMITTING or answer["command_status"]):
                return self._outcome(answer)
        if rows.filter(status=SmppSubmission.PENDING).update(status=SmppSubmission.CANCELED):
            raise CarrierTemporaryError("carrier_unavailable", f"The SMPP bind of {self.name} did not take the message "
                                        "in time; it was withdrawn unsent.", carrier_status="not_submitted")
        answer = rows.values("status", "carrier_message_id", "command_status").get()
        if answer["status"] == SmppSubmission.SUBMITTING:
            raise CarrierTemporaryError("carrier_no_answer", "The SMSC did not answer the submit in time; the message "
                                        "may have been sent.", carrier_status="no_response", maybe_sent=True)
        return self._outcome(answer)

    def _outcome(self, answer: dict) -> SendResult:
        from messaging.models import SmppSubmission

        status, command_status = answer["status"], answer["command_status"]
        if status == SmppSubmission.ACCEPTED:
            return SendResult(carrier_message_id=answer["carrier_message_id"])
        if status == SmppSubmission.SUBMITTING:  # CONNECTION_LOST: written to the SMSC, never answered
            raise CarrierTemporaryError("carrier_no_answer", "The connection to the SMSC dropped before it answered; "
                                        "the message may have been sent.", carrier_status=command_status,
                                        maybe_sent=True)
        if status == SmppSubmission.REJECTED:
            code, _ = command_status_error(command_status)
            raise CarrierRejectedError(code, f"The carrier refused the message: {status_description(command_status)} "
                                       f"({command_status}).", carrier_status=command_status)
        # failed (the bind could not submit it, or the SMSC refused it for now) or canceled: never sent
        code = command_status_error(command_status)[0] if command_status else "carrier_unavailable"
        detail = f"{status_description(command_status)} ({command_status})" if command_status else (
            "the SMPP session dropped before it was sent")
        raise CarrierTemporaryError(code, f"The carrier could not take the message now: {detail}.",
                                    carrier_status=command_status or "not_submitted")
