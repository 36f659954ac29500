"""Twilio's REST API as a carrier (placeholder until the adapter lands)."""

from messaging.carriers.base import CarrierTemporaryError, OutboundSms, SendResult, SmsClient


class TwilioClient(SmsClient):
    kind = "twilio"

    def try_send_sms(self, sms: OutboundSms) -> SendResult:
        raise CarrierTemporaryError("carrier_unavailable", "Twilio is not available yet.")
