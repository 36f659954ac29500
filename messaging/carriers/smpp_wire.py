"""An SMPP bind's connection: its settings, its socket and the PDUs read from it.

The socket is ours: smpplib builds and parses the PDUs, and its Client, never connected here, numbers them.
"""

from dataclasses import dataclass
import logging
import select
import socket
import struct
import time

from smpplib import command as smpp_command
from smpplib import command_codes
from smpplib import consts as smpp_consts
from smpplib import smpp as smpp_pdus
from smpplib.client import Client
from smpplib.exceptions import UnknownCommandError
from smpplib.ptypes import ostr

from messaging.carriers.smpp import (
    DEFAULT_ENQUIRE_LINK_INTERVAL, DEFAULT_RECONNECT_MAX, DEFAULT_RECONNECT_MIN, DEFAULT_RESPONSE_TIMEOUT,
    DEFAULT_SUBMIT_TIMEOUT, DEFAULT_WINDOW, ESME_RINVCMDID, ESME_RINVCMDLEN, ESME_ROK, is_delivery_receipt, setting,
    status_name,
)

logger = logging.getLogger(__name__)


class BindRefused(Exception):
    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


class SessionLost(Exception):
    """The session is over: dropped, unbound by the SMSC, or unanswered."""


def failure_reason(error: OSError) -> str:
    """Why the connection failed, never blank: the system's words, then the exception and its errno
    ("Connection refused (ConnectionRefusedError, errno 111)")."""
    words = (error.strerror or str(error)).strip().rstrip(".") or "no reason given"
    errno = f", errno {error.errno}" if error.errno else ""
    return f"{words} ({type(error).__name__}{errno})"


@dataclass(frozen=True)
class BindConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str
    service_type: str
    window: int
    tps: int
    submit_timeout: float
    enquire_link_interval: float
    response_timeout: float
    reconnect_min: float
    reconnect_max: float

    @classmethod
    def of(cls, carrier) -> "BindConfig":
        return cls(
            host=setting(carrier, "host", "127.0.0.1"), port=setting(carrier, "port", 2775),
            system_id=setting(carrier, "system_id", ""), password=carrier.credentials.get("password", ""),
            system_type=setting(carrier, "system_type", ""), service_type=setting(carrier, "service_type", ""),
            window=max(setting(carrier, "window", DEFAULT_WINDOW), 1), tps=carrier.tps or 0,
            submit_timeout=setting(carrier, "submit_timeout", DEFAULT_SUBMIT_TIMEOUT),
            enquire_link_interval=setting(carrier, "enquire_link_interval", DEFAULT_ENQUIRE_LINK_INTERVAL),
            response_timeout=setting(carrier, "response_timeout", DEFAULT_RESPONSE_TIMEOUT),
            reconnect_min=setting(carrier, "reconnect_min", DEFAULT_RECONNECT_MIN),
            reconnect_max=setting(carrier, "reconnect_max", DEFAULT_RECONNECT_MAX),
        )


MAX_PDU_LENGTH = 65536


def _tolerant_params(request) -> dict:
    """smpplib's parameters of `request`, tolerant of TLVs it knows but does not expect in it (it would raise
    KeyError) and of a receipted_message_id sent without its NUL (it would lose a character)."""
    return {
        **{name: smpp_command.Param(type=ostr, max=65535) for name in smpp_consts.OPTIONAL_PARAMS},
        **request.params,
        "receipted_message_id": smpp_command.Param(type=ostr, max=65),
    }


class _DeliverSM(smpp_command.DeliverSM):
    params = _tolerant_params(smpp_command.DeliverSM)


class _DataSM(smpp_command.DataSM):
    params = _tolerant_params(smpp_command.DataSM)
    short_message = None  # a data_sm's user data is in message_payload alone: read like a deliver_sm's


_REQUESTS = {"deliver_sm": _DeliverSM, "data_sm": _DataSM}

# The mandatory fields of the requests an SMSC sends us with a body (SMPP 3.4 4.6.1, 4.7.1, 4.12.1), in order:
# "c" a C-Octet String (up to its NUL), a number its size in octets, "sm" sm_length and that many octets. Whole
# TLVs follow, to the last octet. smpplib reads a body cut short without complaint, leaving fields unset.
_MANDATORY_FIELDS = {
    "deliver_sm": ("c", 1, 1, "c", 1, 1, "c", 1, 1, 1, "c", "c", 1, 1, 1, 1, "sm"),
    "data_sm": ("c", 1, 1, "c", 1, 1, "c", 1, 1, 1),
    "alert_notification": (1, 1, "c", 1, 1, "c"),
}


def body_fits(command: str, body: bytes) -> bool:
    """Whether `body` holds each mandatory field of `command` (one of _MANDATORY_FIELDS) and whole TLVs after
    them, ending where the PDU ends."""
    position = 0
    for field in _MANDATORY_FIELDS[command]:
        if field == "c":
            end = body.find(b"\x00", position)
            if end < 0:
                return False
            position = end + 1
        elif field == "sm":
            if position >= len(body):
                return False
            position += 1 + body[position]
        else:
            position += field
        if position > len(body):
            return False
    while position + 4 <= len(body):
        position += 4 + int.from_bytes(body[position + 2:position + 4], "big")
    return position == len(body)


@dataclass
class UnknownPdu:
    """A PDU we cannot read, answered generic_nack when it is a request: `nack_status` ESME_RINVCMDID for a
    command we do not know, ESME_RINVCMDLEN for a known one whose body does not hold its fields."""

    command_id: int
    status: int
    sequence: int
    nack_status: int = ESME_RINVCMDID
    command: str = "unknown"


def parse_pdu(raw: bytes, client: Client):
    command_id, status, sequence = struct.unpack(">LLL", raw[4:16])
    try:
        command = command_codes.get_command_name(command_id)
    except UnknownCommandError:
        logger.warning("Unknown PDU 0x%08x #%s: %s", command_id, sequence, raw.hex())
        return UnknownPdu(command_id, status, sequence)
    if command in _MANDATORY_FIELDS and not body_fits(command, raw[16:]):
        logger.warning("Malformed %s #%s: %s", command, sequence, raw.hex())
        return UnknownPdu(command_id, status, sequence, nack_status=ESME_RINVCMDLEN)
    try:
        if command in _REQUESTS:
            pdu = _REQUESTS[command](command, client=client, sequence=sequence, allow_unknown_opt_params=True)
        else:
            pdu = smpp_pdus.make_pdu(command, client=client, sequence=sequence, allow_unknown_opt_params=True)
        pdu.parse(raw)
    except Exception:  # a body smpplib cannot read
        logger.warning("Unparsable %s #%s: %s", command, sequence, raw.hex(), exc_info=True)
        return UnknownPdu(command_id, status, sequence, nack_status=ESME_RINVCMDLEN)
    return pdu


def pdu_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value.rstrip("\x00").strip()


class Link:
    """The socket is ours, so that one loop waits on it, the clock and the queue at once: smpplib's Client
    reads one PDU at a time, blocking, from a socket it does not expose. smpplib builds and parses the PDUs;
    its Client, never connected here, numbers them."""

    def __init__(self, config: BindConfig):
        self.config = config
        self.client = Client(config.host, config.port, allow_unknown_opt_params=True)
        self._socket: socket.socket | None = None
        self._buffer = bytearray()

    def open(self) -> None:
        """Connect and bind_transceiver: BindRefused with the SMSC's reason, or OSError when it cannot be
        reached, drops the connection or does not answer within `response_timeout`."""
        self._socket = socket.create_connection((self.config.host, self.config.port),
                                                timeout=self.config.response_timeout)
        bind = self.make("bind_transceiver", system_id=self.config.system_id, password=self.config.password,
                         system_type=self.config.system_type)
        self.send(bind)
        deadline = time.monotonic() + self.config.response_timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                self._read(left)
                # One at a time: what follows the answer in the same read stays buffered for the session (an
                # SMSC may deliver at once the receipts it kept for this system_id).
                while (pdu := self._take()) is not None:
                    if pdu.sequence == bind.sequence:  # bind_transceiver_resp, or generic_nack
                        if pdu.status != ESME_ROK:
                            raise BindRefused(status_name(pdu.status))
                        return
        except SessionLost as lost:
            raise ConnectionError(str(lost)) from None
        raise TimeoutError(f"No answer to bind_transceiver in {self.config.response_timeout:g} s.")

    def make(self, command: str, **fields):
        return smpp_pdus.make_pdu(command, client=self.client, **fields)

    def send(self, pdu) -> None:
        self._socket.sendall(pdu.generate())

    def answer(self, request, command: str, status: int = ESME_ROK) -> None:
        response = self.make(command, status=status)
        response.sequence = request.sequence
        self.send(response)

    def receive(self, timeout: float) -> list:
        """The PDUs that arrive within `timeout` seconds (none, usually), or those already buffered."""
        pdus = list(iter(self._take, None))
        if not pdus:
            self._read(timeout)
            pdus = list(iter(self._take, None))
        return pdus

    def _read(self, timeout: float) -> None:
        readable, _, _ = select.select([self._socket], [], [], max(timeout, 0.0))
        if readable:
            data = self._socket.recv(65536)
            if not data:
                raise SessionLost("The SMSC closed the connection.")
            self._buffer += data

    def _take(self):
        """The first PDU in the buffer, once all of it has arrived."""
        if len(self._buffer) < 16:
            return None
        length = struct.unpack(">L", self._buffer[:4])[0]
        if not 16 <= length <= MAX_PDU_LENGTH:
            raise SessionLost(f"The SMSC sent a PDU of impossible length {length}.")
        if len(self._buffer) < length:
            return None
        raw = bytes(self._buffer[:length])
        del self._buffer[:length]
        return parse_pdu(raw, self.client)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def pdu_is_receipt(pdu) -> bool:
    """A deliver_sm or data_sm that reports on a message we sent, by its esm_class or its receipt TLVs."""
    return is_delivery_receipt(pdu.esm_class or 0, receipted_message_id=pdu_text(pdu.receipted_message_id),
                               message_state=pdu.message_state)


def pdu_record(pdu, *, text: str) -> dict:
    """The deliver_sm or data_sm as JSON, for the record: the user data's exact octets in hex, beside the text."""
    raw = {"command": pdu.command, "sequence": pdu.sequence, "source_addr": pdu_text(pdu.source_addr),
           "source_addr_ton": pdu.source_addr_ton, "source_addr_npi": pdu.source_addr_npi,
           "destination_addr": pdu_text(pdu.destination_addr), "dest_addr_ton": pdu.dest_addr_ton,
           "dest_addr_npi": pdu.dest_addr_npi, "esm_class": pdu.esm_class, "data_coding": pdu.data_coding,
           "short_message": (pdu.short_message or b"").hex(), "text": text}
    for name in ("message_payload", "receipted_message_id", "message_state", "network_error_code",
                 "sar_msg_ref_num", "sar_total_segments", "sar_segment_seqnum"):
        value = getattr(pdu, name, None)
        if value is not None:
            raw[name] = value.hex() if name in ("message_payload", "network_error_code") and isinstance(
                value, bytes) else (pdu_text(value) if isinstance(value, bytes) else value)
    return raw
