"""The sandbox carrier: deterministic, reaches no phone, and simulates outcomes by recipient.

Magic recipients (any other valid number is delivered after MITTIS_SANDBOX_REPORT_DELAY seconds):

| to             | outcome                                                                   |
|----------------|---------------------------------------------------------------------------|
| +15005550001   | refused by the carrier at send: `failed`, error `carrier_rejected`        |
| +15005550002   | accepted, then reported `undelivered`, error `unknown_subscriber`         |
| +15005550003   | accepted and never reported: stays `sent`                                 |
| +15005550004   | the carrier is briefly unavailable: the first attempt fails temporarily,  |
|                | the retry is accepted and delivered                                        |
"""

import hashlib

from django.conf import settings

from messaging import statuses
from messaging.carriers.base import (
    CarrierRejectedError, CarrierTemporaryError, DeliveryReport, OutboundSms, SendResult, SmsClient,
)

FAILS = "+15005550001"
UNDELIVERED = "+15005550002"
NEVER_REPORTS = "+15005550003"
TEMPORARILY_UNAVAILABLE = "+15005550004"
MAGIC_RECIPIENTS = {FAILS, UNDELIVERED, NEVER_REPORTS, TEMPORARILY_UNAVAILABLE}


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
        if to == UNDELIVERED:
            return DeliveryReport(carrier_message_id, statuses.UNDELIVERED, carrier_status="UNDELIV",
                                  error_code="unknown_subscriber", error_message="The recipient's number is not in use.")
        return DeliveryReport(carrier_message_id, statuses.DELIVERED, carrier_status="DELIVRD")
