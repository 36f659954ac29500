"""The small interface every carrier implements, after GOV.UK Notify's provider clients.

`send_sms` wraps logging and timing around the carrier's own `try_send_sms`. Carriers raise
`CarrierTemporaryError` for what a retry may fix and `CarrierRejectedError` for what it will not;
neither ever reaches an API response.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass, replace
import logging
import re
import time

logger = logging.getLogger(__name__)

# What PostgreSQL cannot store in text or jsonb: NUL, and a lone surrogate (no UTF-8). A carrier's text may
# hold either: an 8-bit or UCS-2 body, a receipt quoting a message's octets, a form field.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value):
    """A carrier's text as we store it, whatever it holds: `value` (text, a dataclass of text, or JSON of them)
    with each NUL and lone surrogate made U+FFFD, the character that stands for one that could not be shown.
    The exact octets stay where the protocol has them (SMPP's raw hex). The one path from a carrier to a row."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(item) for item in value]
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{field.name: storable(getattr(value, field.name)) for field in fields(value)})
    return value


@dataclass(frozen=True)
class OutboundSms:
    reference: str  # our message id, handed to the carrier so its reports map straight back
    sender: str
    to: str
    body: str
    livemode: bool
    attempt: int
    # Seconds the message may still wait for delivery: carriers whose protocol has a validity period
    # (SMPP `validity_period`, Twilio `ValidityPeriod`) are told it.
    validity_seconds: int | None = None


@dataclass(frozen=True)
class DeliveryReport:
    carrier_message_id: str
    status: str  # one of our statuses: delivered, undelivered or failed
    carrier_status: str  # the carrier's own code, kept raw for staff
    error_code: str = ""
    error_message: str = ""
    # Our message id, when the carrier echoes it back (Twilio's callback URL carries it): it matches a
    # report even when the carrier's answer to the submit never reached us.
    reference: str = ""


@dataclass(frozen=True)
class InboundSms:
    """A message from a phone to one of our numbers, as a carrier handed it to us."""

    sender: str  # the phone that sent it, E.164
    to: str  # our number (or short code) it was sent to
    body: str
    carrier_message_id: str = ""


@dataclass(frozen=True)
class SendResult:
    carrier_message_id: str
    # A carrier that reports on its own schedule (the sandbox) hands its report back with a delay;
    # real carriers leave this empty and call us back.
    scheduled_report: DeliveryReport | None = None
    report_delay: float = 0.0


@dataclass(frozen=True)
class Inbox:
    """Where a carrier's long-running receiver (an SMPP bind) hands what the carrier sends: the services that
    apply a delivery report (`carrier=, report=, raw=`) and receive a message (`carrier=, inbound=, raw=`),
    given by whoever starts it. Carriers sit below the services, which send through them."""

    report: Callable[..., object]
    inbound: Callable[..., object]


class CarrierError(Exception):
    def __init__(self, code: str, message: str, *, carrier_status: str = ""):
        message, carrier_status = storable(message), storable(carrier_status)  # the attempt records both
        super().__init__(message)
        self.code = code
        self.message = message
        self.carrier_status = carrier_status


class CarrierTemporaryError(CarrierError):
    """The carrier could not take the message now (refused connection, throttling, outage): retry, or
    fail over to another carrier.

    `maybe_sent` is True when the carrier may have taken the message all the same (no answer after
    the request was sent): then it is neither retried nor failed over, so it is never sent twice.
    """

    def __init__(self, code: str, message: str, *, carrier_status: str = "", maybe_sent: bool = False):
        super().__init__(code, message, carrier_status=carrier_status)
        self.maybe_sent = maybe_sent

    @property
    def throttled(self) -> bool:
        """The carrier answered that it is too busy now: it is up, so this never counts against its breaker."""
        return self.code == "carrier_throttled"


class CarrierRejectedError(CarrierError):
    """The carrier refused the message for good: the message fails with `code`.

    `fail_over` is True when the refusal is this carrier's, not the message's (its account may not send to
    that country): the route's next carrier is tried, and the message fails only when every carrier refused.
    """

    def __init__(self, code: str, message: str, *, carrier_status: str = "", fail_over: bool = False):
        super().__init__(code, message, carrier_status=carrier_status)
        self.fail_over = fail_over


class SmsClient(ABC):
    """One carrier account. Subclasses implement `try_send_sms`; carriers that call us back also
    turn their payloads into our reports and inbound messages."""

    name: str
    kind: str
    # Cheap to call (no network): sent by the batch dispatchers. A carrier behind a network call is sent
    # by a task per message, so that the workers overlap its latency.
    sends_in_batches = False

    def __init__(self, carrier=None):
        self.carrier = carrier  # the messaging.Carrier row: settings, credentials, tps
        if carrier is not None:
            self.name = carrier.name

    def send_sms(self, sms: OutboundSms) -> SendResult:
        started = time.monotonic()
        try:
            result = self.try_send_sms(sms)
        except CarrierError as error:
            logger.warning("carrier=%s reference=%s attempt=%s error=%s (%s) in %.0f ms", self.name,
                           sms.reference, sms.attempt, error.code, type(error).__name__,
                           (time.monotonic() - started) * 1000)
            raise
        logger.info("carrier=%s reference=%s attempt=%s accepted as %s in %.0f ms", self.name, sms.reference,
                    sms.attempt, result.carrier_message_id, (time.monotonic() - started) * 1000)
        return result

    @abstractmethod
    def try_send_sms(self, sms: OutboundSms) -> SendResult: ...

    def query_report(self, *, carrier_message_id: str, to: str) -> DeliveryReport | None:
        """What became of a message the carrier took, asked again when its report may have been lost (a
        worker died holding it). None where the carrier cannot be asked: its own callback brings it."""
        return None

    def parse_delivery_report(self, payload: dict) -> DeliveryReport:
        raise NotImplementedError(f"{self.name} does not send delivery reports this way")

    def parse_inbound(self, payload: dict) -> InboundSms:
        raise NotImplementedError(f"{self.name} does not send inbound messages this way")
