"""Why a message failed: the codes a failed, undelivered or expired message carries, whichever carrier
reported it. Each adapter maps its carrier's raw codes onto these (see their tables); `retryable` says
whether sending the same message again later may succeed.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class MessageError:
    code: str
    retryable: bool
    message: str  # the default error_message


_ERRORS = [
    MessageError("invalid_phone_number", False, "The recipient's number is not valid."),
    MessageError("unknown_subscriber", False, "The recipient's number is not in use."),
    MessageError("landline", False, "The recipient's number cannot receive text messages (a landline)."),
    MessageError("recipient_opted_out", False, "The recipient has opted out of messages from this sender."),
    MessageError("blocked", False, "The carrier blocked the message (filtered as spam or not allowed)."),
    MessageError("invalid_sender", False, "The carrier does not accept this sender for this destination."),
    MessageError("body_too_long", False, "The carrier refused the message as too long."),
    MessageError("carrier_rejected", False, "The carrier refused the message."),
    MessageError("unreachable", True, "The handset could not be reached (switched off or out of coverage)."),
    MessageError("expired", True, "The message was not handed to a carrier within its validity period."),
    MessageError("carrier_unavailable", True, "No carrier could take the message (outage or refusal to connect)."),
    MessageError("carrier_throttled", True, "The carrier was throttling our traffic."),
    MessageError("carrier_no_answer", True, "The carrier did not answer; it may or may not have the message."),
    MessageError("carrier_bad_response", True, "The carrier's answer could not be understood."),
    MessageError("no_delivery_report", True, "No final delivery report arrived within the time we wait for one."),
    MessageError("unknown_error", True, "The carrier reported a failure without a reason."),
]
MESSAGE_ERRORS: dict[str, MessageError] = {error.code: error for error in _ERRORS}


def retryable(code: str) -> bool | None:
    """None for a message without an error; unknown codes count as retryable."""
    if not code:
        return None
    error = MESSAGE_ERRORS.get(code)
    return error.retryable if error else True


def catalogue_markdown() -> str:
    rows = ["| error_code | retryable | meaning |", "|---|---|---|"]
    rows += [f"| `{e.code}` | {'yes' if e.retryable else 'no'} | {e.message} |" for e in _ERRORS]
    return "\n".join(rows)
