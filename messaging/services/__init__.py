"""Writes for messages, a module per stage of their lifecycle (reads are `messaging.selectors`):

- `accept`: a send priced, charged and stored with its event and webhooks, in one statement
- `dispatch`: batch dispatchers, claiming queued messages and sending them together
- `send`: one message handed to its carriers (failover, throughput, retries); acceptances recorded
- `reports`: what carriers report, applied
- `inbound`: messages from phones, opt-outs and HELP
- `opt_outs`: opt-outs that carriers report (a refusal of an unsubscribed recipient)
- `lifecycle`: failing, expiring and canceling one message, with its refund
- `sweeps`: what lost tasks, dead workers and a down broker left behind, finished by beat
- `redaction`: bodies removed, at once or past retention
- `sandbox`: the test helpers, an inbound message or a delivery report on demand, through `inbound` and `reports`
- `transitions`: the one way a status changes, for one message or a batch, with its event

Every status change goes through `transitions.transition`, which checks the lifecycle (`statuses.py`)
and writes the event with the change. No transaction is held across a carrier call.
"""

from messaging.carriers.base import Inbox
from messaging.services.accept import MessageQuote, message_create, message_preview, sender_create
from messaging.services.dispatch import dispatch_request, messages_dispatch
from messaging.services.inbound import message_receive
from messaging.services.lifecycle import message_cancel, message_expire, message_fail
from messaging.services.redaction import message_redact, messages_redact_past_retention
from messaging.services.reports import message_apply_delivery_report, messages_apply_delivery_reports
from messaging.services.sandbox import sandbox_delivery_report, sandbox_message_receive
from messaging.services.send import MAX_SEND_ATTEMPTS, SendOutcome, message_send, sender_mps, sender_number_type
from messaging.services.sweeps import (
    messages_close_stuck, messages_dispatch_scheduled, messages_expire_overdue, messages_recover_interrupted,
    messages_recover_lost_reports, messages_requeue_stale,
)

# What carriers' long-running receivers (SMPP binds) hand their receipts and inbound messages to.
CARRIER_INBOX = Inbox(report=message_apply_delivery_report, inbound=message_receive)

__all__ = [
    "CARRIER_INBOX",
    "MAX_SEND_ATTEMPTS", "MessageQuote", "SendOutcome", "dispatch_request", "message_apply_delivery_report",
    "message_cancel", "message_create", "message_expire", "message_fail", "message_preview", "message_receive",
    "message_redact", "message_send", "messages_apply_delivery_reports", "messages_close_stuck",
    "messages_dispatch", "messages_dispatch_scheduled", "messages_expire_overdue", "messages_recover_interrupted",
    "messages_recover_lost_reports", "messages_redact_past_retention", "messages_requeue_stale",
    "sandbox_delivery_report", "sandbox_message_receive", "sender_create", "sender_mps", "sender_number_type",
]
