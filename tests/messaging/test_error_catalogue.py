"""Every code a carrier adapter can give a message is in the documented catalogue."""

from messaging.carriers import smpp, twilio
from messaging.errors import MESSAGE_ERRORS, retryable


def test_every_adapter_code_is_catalogued():
    codes = {error.code for error in twilio.REPORT_ERRORS.values()} | {e.code for e in twilio.SEND_ERRORS.values()}
    codes |= {code for code, _temporary in smpp.COMMAND_STATUS_ERRORS.values()}
    codes |= {code for _status, code in smpp.RECEIPT_STATES.values() if code}
    codes |= {"carrier_unavailable", "carrier_rejected", "unknown_subscriber", "expired", "no_delivery_report"}

    assert codes - set(MESSAGE_ERRORS) == set()


def test_retryable_is_null_without_an_error_and_true_for_an_unknown_one():
    assert retryable("") is None
    assert retryable("carrier_rejected") is False and retryable("unreachable") is True
    assert retryable("something_new") is True
