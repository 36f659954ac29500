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
from smpplib.ptypes import ostr

from messaging.carriers.smpp import (
    DEFAULT_ENQUIRE_LINK_INTERVAL, DEFAULT_RECONNECT_MAX, DEFAULT_RECONNECT_MIN, DEFAULT_RESPONSE_TIMEOUT,
    DEFAULT_SUBMIT_TIMEOUT, DEFAULT_WINDOW, ESME_ROK, setting, status_name,
)

logger = logging.getLogger(__name__)


class BindRefused(Exception):
    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


class SessionLost(Exception):
    """The session is over: dropped, unbound by the SMSC, or unanswered."""


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


class _DeliverSM(smpp_command.DeliverSM):
    """smpplib's deliver_sm, tolerant of TLVs it knows but does not expect in a deliver_sm (it would
    raise KeyError) and of a receipted_message_id sent without its NUL (it would lose a character)."""

    params = {
        **{name: smpp_command.Param(type=ostr, max=65535) for name in smpp_consts.OPTIONAL_PARAMS},
        **smpp_command.DeliverSM.params,
        "receipted_message_id": smpp_command.Param(type=ostr, max=65),
    }


@dataclass
class UnknownPdu:
    """A PDU smpplib cannot parse: answered generic_nack when it is a request."""

    command_id: int
    status: int
    sequence: int
    command: str = "unknown"


def parse_pdu(raw: bytes, client: Client):
    command_id, status, sequence = struct.unpack(">LLL", raw[4:16])
    try:
        command = command_codes.get_command_name(command_id)
        if command == "deliver_sm":
            pdu = _DeliverSM(command, client=client, sequence=sequence, allow_unknown_opt_params=True)
        else:
            pdu = smpp_pdus.make_pdu(command, client=client, sequence=sequence, allow_unknown_opt_params=True)
        pdu.parse(raw)
    except Exception:  # unknown command, or a body smpplib cannot read
        logger.warning("Unparsable PDU 0x%08x #%s: %s", command_id, sequence, raw.hex(), exc_info=True)
        return UnknownPdu(command_id, status, sequence)
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
