"""The sandbox carrier: deterministic, reaches no phone, and simulates outcomes by recipient.

Magic recipients (any other valid number is delivered after MITTIS_SANDBOX_REPORT_DELAY seconds):

| to             | outcome                                                                   |
|----------------|---------------------------------------------------------------------------|
| +15005550001   | refused by the carrier at send: `failed`, error `carrier_rejected`        |
| +15005550002   | accepted, then reported `undelivered`, error `unknown_subscriber`         |
| +15005550003   | accepted and never reported: stays `sent`                                 |
| +15005550004   | the carrier is briefly unavailable: the first attempt fails temporarily,  |
|                | the retry is accepted and delivered                                        |

The test helpers (`messaging.services.sandbox`) make the rest happen on demand: a report for any sent message
(the only way +15005550003's ever is), and a message from a phone to one of the account's senders.
"""

import hashlib

from django.conf import settings

from messaging import statuses
from messaging.carriers.base import (
    CarrierRejectedError, CarrierTemporaryError, DeliveryReport, OutboundSms, SendResult, SmsClient,
)
from messaging.errors import MESSAGE_ERRORS

FAILS = "+15005550001"
UNDELIVERED = "+15005550002"
NEVER_REPORTS = "+15005550003"
TEMPORARILY_UNAVAILABLE = "+15005550004"
MAGIC_RECIPIENTS = {FAILS, UNDELIVERED, NEVER_REPORTS, TEMPORARILY_UNAVAILABLE}

# The sandbox's raw status of each outcome it reports: the `stat` words of an SMPP delivery receipt, which it imitates.
CARRIER_STATUSES = {statuses.DELIVERED: "DELIVRD", statuses.UNDELIVERED: "UNDELIV", statuses.FAILED: "REJECTD"}
# The error of a failure reported without one: the magic recipients' (+15005550002's, +15005550001's).
DEFAULT_ERRORS = {statuses.UNDELIVERED: "unknown_subscriber", statuses.FAILED: "carrier_rejected"}


def report(carrier_message_id: str, status: str, *, error_code: str = "", reference: str = "") -> DeliveryReport:
    """The report the sandbox gives for an outcome (`CARRIER_STATUSES`' keys): a failure carries `error_code`
    (one of `messaging.errors`', else its outcome's default) and that code's message."""
    if status not in DEFAULT_ERRORS:
        return DeliveryReport(carrier_message_id, status, carrier_status=CARRIER_STATUSES[status], reference=reference)
    code = error_code or DEFAULT_ERRORS[status]
    return DeliveryReport(carrier_message_id, status, carrier_status=CARRIER_STATUSES[status], error_code=code,
                          error_message=MESSAGE_ERRORS[code].message, reference=reference)


class SandboxClient(SmsClient):
    name = "sandbox"
    kind = "sandbox"
    sends_in_batches = True

    def try_send_sms(self, sms: OutboundSms) -> SendResult:
        if sms.to == FAILS:
            raise CarrierRejectedError("carrier_rejected", "The carrier rejected the message.",
                                       carrier_status="REJECTD")
        if sms.to == TEMPORARILY_UNAVAILABLE and sms.attempt == 1:
            raise CarrierTemporaryError("carrier_unavailable", "The carrier is temporarily unavailable.",
                                        carrier_status="THROTTLED")
        # Derived from our reference, so a repeated submit gets the same carrier id (deterministic).
        carrier_message_id = "sbx_" + hashlib.sha256(sms.reference.encode()).hexdigest()[:24]
        return SendResult(carrier_message_id=carrier_message_id,
                          scheduled_report=self.query_report(carrier_message_id=carrier_message_id, to=sms.to),
                          report_delay=settings.MITTIS_SANDBOX_REPORT_DELAY)

    def query_report(self, *, carrier_message_id: str, to: str) -> DeliveryReport | None:
        if to == NEVER_REPORTS:
            return None
        return report(carrier_message_id, statuses.UNDELIVERED if to == UNDELIVERED else statuses.DELIVERED)
