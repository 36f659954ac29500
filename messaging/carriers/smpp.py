"""SMPP 3.4 carriers (placeholder until the bind process lands)."""

from messaging.carriers.base import CarrierTemporaryError, OutboundSms, SendResult, SmsClient


class SmppClient(SmsClient):
    kind = "smpp"

    def try_send_sms(self, sms: OutboundSms) -> SendResult:
        raise CarrierTemporaryError("carrier_unavailable", "SMPP is not available yet.")
