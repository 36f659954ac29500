"""The long-running SMPP session of a carrier: `python manage.py smpp_bind` runs a BindRunner thread
per SMPP carrier (smpp_supervisor.BindSupervisor), each with one socket and one loop:

- bind_transceiver with the carrier's system_id and password. A refusal (ESME_RBINDFAIL,
  ESME_RINVPASWD...) marks the SmppBind `failed` with the reason, a refused or dropped connection
  `connecting`; both are tried again after an exponential backoff with jitter.
- While bound: the SmppBind heartbeat every HEARTBEAT_INTERVAL (a send trusts the bind only while it
  beats), enquire_link every `enquire_link_interval`, and any PDU of ours left unanswered for
  `response_timeout` drops the session (a half-open connection would otherwise hang for ever).
- It claims pending SmppSubmissions oldest first (pending -> submitting, a conditional update),
  sends their parts within `window` unanswered submits and `Carrier.tps` PDUs per second, and
  records the SMSC's answer: accepted with its message_id, or rejected / failed with the
  command_status. A throttled part is sent again after a pause, and throttling holds back only what it
  names (smpp_parts.Throttle): one destination for ESME_RMSGQFUL, the session's pace for ESME_RTHROTTLED.
- It answers every deliver_sm and data_sm alike: delivery receipts go to its Inbox's `report` (the
  services' `message_apply_delivery_report`), anything else is an inbound message for its `inbound`
  (`message_receive`), its addresses made E.164 (`address_from_smpp`), concatenated ones once all their
  parts are in. One we could not store is answered ESME_RX_T_APPN, so the SMSC delivers it again later;
  one we cannot read gets generic_nack (`smpp_wire.UnknownPdu`). A receipt that comes while submits are
  unanswered waits for their answers: it may be about one of them.
- Stopping (SIGTERM) waits for the answers still due, then unbinds, within UNBIND_GRACE.

Receipts: the first part's message_id is the message's carrier_message_id, and every part's id is kept
(SmppPart rows, ReceiptBook) so that any part's receipt lands on the message the bind sent, by our
reference, after a restart of the bind or the SMSC too: it is delivered once every part is, and fails as
soon as one part does (the handset cannot show it whole). The connection is in `smpp_wire`, the pieces a
bind puts together and keeps track of (receipts, throttling, inbound parts) in `smpp_parts`.
"""

from dataclasses import dataclass, field
from datetime import timedelta
import logging
import os
import random
import threading
import time

from django.db import DatabaseError, close_old_connections, connections, transaction
from django.utils import timezone

from messaging.carriers.base import Inbox, InboundSms
from messaging.carriers.smpp import (
    BIND_BOUND, BIND_CONNECTING, BIND_FAILED, CONNECTION_LOST, ESM_CLASS_TYPE_MASK, ESM_CLASS_UDHI, ESME_ROK,
    ESME_RX_T_APPN, REGISTERED_DELIVERY_RECEIPT, TEMPORARY_STATUSES, THROTTLING_STATUSES, address_from_smpp,
    concatenation_of, decode_receipt, decode_short_message, parse_receipt, relative_validity,
    setting, smpp_address, split_udh, status_description, status_name, submit_parts,
)
from messaging.carriers.smpp_parts import (
    INBOUND_PART_TTL, InboundAssembler, Outbox, ReceiptBook, ReceiptsAfterAnswers,
)
from messaging.carriers.smpp_wire import (
    BindConfig, BindRefused, Link, SessionLost, UnknownPdu, failure_reason, pdu_is_receipt, pdu_record, pdu_text,
)

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5.0  # SmppClient trusts a heartbeat for 15 s (smpp.BIND_STALE_AFTER)
QUEUE_POLL_INTERVAL = 0.05  # the longest the loop waits on the socket before looking at the queue
UNBIND_GRACE = 2.0  # at shutdown, for the answers still due and the unbind_resp
THROTTLE_PAUSE = 1.0  # what ESME_RTHROTTLED or ESME_RMSGQFUL throttled is held back (or paced) this long
THROTTLE_RETRIES = 3  # then the part counts as refused with that status
# Parts throttling still holds back when this much of their send's wait (submit_timeout) is over are refused
# with the throttling status: the send hears "throttled" in time, never "no answer" for parts never sent.
THROTTLE_GIVE_UP = 0.5
# A pending submission older than its send's timeout has been withdrawn or orphaned (its task died):
# it is never sent. The margin covers clock skew between the worker's host and ours.
CLAIM_MARGIN = timedelta(seconds=5)


# --- One session ----------------------------------------------------------------------------------
@dataclass(eq=False)
class _Part:
    claim: "_Claim"
    fields: dict
    tries: int = 0
    not_before: float = 0.0
    written: bool = False
    answered: bool = False
    message_id: str = ""
    error: str = ""  # the command_status name of a refusal
    held: str = ""  # the throttling status it last got, while it waits to be sent again

    @property
    def destination(self) -> str:
        return self.fields["destination_addr"]


@dataclass(eq=False)
class _Claim:
    submission_id: int
    reference: str
    give_up_at: float  # monotonic: see THROTTLE_GIVE_UP
    parts: list[_Part] = field(default_factory=list)


@dataclass
class _Waiting:
    command: str
    sent_at: float
    part: _Part | None = None


class _Session:
    """One bound session: what is in flight on it dies with it."""

    def __init__(self, runner: "BindRunner", link: Link):
        self.runner = runner
        self.link = link
        self.config = runner.config
        self.waiting: dict[int, _Waiting] = {}
        self.outbox = Outbox(self.config.tps)
        self.claims: list[_Claim] = []
        self.receipts_after_answers = ReceiptsAfterAnswers()
        self.unbound = False

    # The loop ----------------------------------------------------------------------------------
    def serve(self, stop: threading.Event) -> None:
        now = time.monotonic()
        next_heartbeat, next_claim = now + HEARTBEAT_INTERVAL, now
        next_enquire_link = now + self.config.enquire_link_interval
        while not stop.is_set():
            for pdu in self.link.receive(self._idle_time(time.monotonic())):
                self.handle(pdu)
            now = time.monotonic()
            self._check_answers(now)
            if now >= next_heartbeat:
                self.runner.heartbeat()
                self.runner.withdraw_abandoned()
                next_heartbeat = now + HEARTBEAT_INTERVAL
            if now >= next_enquire_link:
                self._request(self.link.make("enquire_link"), now)
                next_enquire_link = now + self.config.enquire_link_interval
            if now >= next_claim:
                self._claim(now)
                next_claim = now + QUEUE_POLL_INTERVAL
            self._give_up_held(now)
            self._send_due(now)
            self.runner.flush_inbound(now)
        self._close_gracefully()

    def _idle_time(self, now: float) -> float:
        if self.outbox and self._submits_in_flight() < self.config.window:
            return min(max(self.outbox.wait(now), 0.0), QUEUE_POLL_INTERVAL)
        return QUEUE_POLL_INTERVAL

    def _check_answers(self, now: float) -> None:
        for sequence, waiting in self.waiting.items():
            if now - waiting.sent_at > self.config.response_timeout:
                raise SessionLost(f"No answer to {waiting.command} #{sequence} in {self.config.response_timeout:g} s.")

    def _request(self, pdu, now: float, part: _Part | None = None) -> None:
        self.link.send(pdu)
        self.waiting[pdu.sequence] = _Waiting(pdu.command, now, part)

    # Submitting --------------------------------------------------------------------------------
    def _submits_in_flight(self) -> int:
        return len(self._unanswered_submits())

    def _unanswered_submits(self) -> set[int]:
        return {sequence for sequence, waiting in self.waiting.items() if waiting.part is not None}

    def _claim(self, now: float) -> None:
        from messaging.models import SmppSubmission

        free = self.config.window - self._submits_in_flight()
        if free <= 0 or self.outbox.has_ready(now):  # parts throttling holds back do not hold the others
            return
        queue = SmppSubmission.objects.filter(carrier_id=self.runner.carrier.pk, status=SmppSubmission.PENDING,
                                              created_at__gte=self.runner.claim_cutoff())
        claimed = [pk for pk in queue.order_by("id").values_list("id", flat=True)[:free]
                   if SmppSubmission.objects.filter(pk=pk, status=SmppSubmission.PENDING).update(
                       status=SmppSubmission.SUBMITTING, updated_at=timezone.now())]
        for submission in SmppSubmission.objects.filter(pk__in=claimed).order_by("id"):
            self._queue(submission, now)

    def _queue(self, submission, now: float) -> None:
        claim = _Claim(submission.pk, submission.reference, now + self.config.submit_timeout * THROTTLE_GIVE_UP)
        source_ton, source_npi, source = smpp_address(submission.sender)
        dest_ton, dest_npi, destination = smpp_address(submission.to)
        for part in submit_parts(submission.body, reference=self.runner.next_concatenation_reference()):
            claim.parts.append(_Part(claim, {
                "service_type": self.config.service_type,
                "source_addr_ton": source_ton, "source_addr_npi": source_npi, "source_addr": source,
                "dest_addr_ton": dest_ton, "dest_addr_npi": dest_npi, "destination_addr": destination,
                "esm_class": part.esm_class, "registered_delivery": REGISTERED_DELIVERY_RECEIPT,
                "data_coding": part.data_coding, "short_message": part.short_message,
                # What is left of the message's validity: the SMSC stops trying when it runs out.
                **({"validity_period": relative_validity(submission.validity_seconds)}
                   if submission.validity_seconds else {}),
            }))
        self.claims.append(claim)
        self.outbox.add(claim.parts)

    def _send_due(self, now: float) -> None:
        while self._submits_in_flight() < self.config.window:
            part = self.outbox.take(now)
            if part is None:
                return
            self._request(self.link.make("submit_sm", **part.fields), now, part)
            part.written = True

    def _give_up_held(self, now: float) -> None:
        for claim in [claim for claim in self.claims if now >= claim.give_up_at]:
            self.outbox.give_up(claim.parts, now)
            if all(part.answered for part in claim.parts):
                self._settle(claim)

    def _on_submit_answer(self, pdu) -> None:
        waiting = self.waiting.pop(pdu.sequence, None)
        if waiting is None or waiting.part is None:
            if waiting is None:
                logger.warning("carrier=%s answer to unknown #%s: %s", self.runner.name, pdu.sequence, pdu.command)
            return
        part, name = waiting.part, status_name(pdu.status)
        if pdu.status == ESME_ROK and pdu.command == "submit_sm_resp":
            part.message_id = pdu_text(pdu.message_id)
        elif name in THROTTLING_STATUSES and part.tries < THROTTLE_RETRIES:
            part.tries, part.written = part.tries + 1, False  # refused: the SMSC does not have it
            self.outbox.put_back(part, name, now=time.monotonic(), pause=THROTTLE_PAUSE)
            return
        else:
            part.error = name
        part.answered = True
        if all(p.answered for p in part.claim.parts):
            self._settle(part.claim)

    def _settle(self, claim: _Claim) -> None:
        """Record a claim's outcome once the SMSC answered every part. A message partly accepted is
        rejected, not retried: sent again, its accepted parts would arrive twice."""
        from messaging.models import SmppSubmission

        self.claims.remove(claim)
        errors = [part.error for part in claim.parts if part.error]
        if not errors:
            part_ids = [part.message_id for part in claim.parts]
            self.runner.answer(claim.submission_id, SmppSubmission.ACCEPTED, part_ids=part_ids)
        elif all(error in TEMPORARY_STATUSES for error in errors) and not any(p.message_id for p in claim.parts):
            self.runner.answer(claim.submission_id, SmppSubmission.FAILED, command_status=errors[0])
        else:
            final = next((error for error in errors if error not in TEMPORARY_STATUSES), errors[0])
            self.runner.answer(claim.submission_id, SmppSubmission.REJECTED, command_status=final)

    # What the SMSC sends -----------------------------------------------------------------------
    def handle(self, pdu) -> None:
        command = pdu.command
        if command in ("submit_sm_resp", "generic_nack"):
            self._on_submit_answer(pdu)
            for receipt in self.receipts_after_answers.ready(self._unanswered_submits()):
                self._on_deliver(receipt)
        elif command == "enquire_link_resp":
            self.waiting.pop(pdu.sequence, None)
        elif command in ("deliver_sm", "data_sm"):
            if not (pdu_is_receipt(pdu) and self.receipts_after_answers.wait(pdu, self._unanswered_submits())):
                self._on_deliver(pdu)
        elif command == "enquire_link":
            self.link.answer(pdu, "enquire_link_resp")
        elif command == "unbind":
            self.link.answer(pdu, "unbind_resp")
            raise SessionLost("The SMSC unbound the session.")
        elif command == "unbind_resp":
            self.waiting.pop(pdu.sequence, None)
            self.unbound = True
        elif command == "alert_notification":
            pass  # we never ask for them (no set_dpf)
        elif isinstance(pdu, UnknownPdu) and not pdu.command_id & 0x80000000:
            response = self.link.make("generic_nack", status=pdu.nack_status)
            response.sequence = pdu.sequence
            self.link.send(response)
        else:
            logger.warning("carrier=%s ignored %s #%s", self.runner.name, command, pdu.sequence)

    def _on_deliver(self, pdu) -> None:
        """A deliver_sm or a data_sm (SMPP 3.4 4.7), answered alike: a receipt or an inbound message."""
        command, status = pdu.command, ESME_ROK
        try:
            if pdu_is_receipt(pdu):
                self.runner.on_receipt(pdu)
            elif not (pdu.esm_class or 0) & ESM_CLASS_TYPE_MASK:
                self.runner.on_inbound(pdu, time.monotonic())
            else:  # an SME's own acknowledgement: we never ask for those
                logger.info("carrier=%s ignored %s with esm_class 0x%02x", self.runner.name, command, pdu.esm_class)
        except Exception:
            logger.exception("carrier=%s could not store %s #%s; the SMSC will deliver it again",
                             self.runner.name, command, pdu.sequence)
            close_old_connections()
            status = ESME_RX_T_APPN
        self.link.answer(pdu, f"{command}_resp", status)

    # Ending --------------------------------------------------------------------------------------
    def _close_gracefully(self) -> None:
        """Stop taking work, wait for the answers still due, unbind."""
        self.outbox.keep(lambda part: any(p.written for p in part.claim.parts))
        deadline = time.monotonic() + UNBIND_GRACE
        try:
            while (self.outbox or self._submits_in_flight()) and time.monotonic() < deadline:
                for pdu in self.link.receive(0.02):
                    self.handle(pdu)
                self._send_due(time.monotonic())
            self._request(self.link.make("unbind"), time.monotonic())
            while not self.unbound and time.monotonic() < deadline:
                for pdu in self.link.receive(0.02):
                    self.handle(pdu)
        except (SessionLost, OSError) as error:
            logger.info("carrier=%s session ended while unbinding: %s", self.runner.name, error)

    def release(self) -> None:
        """Hand back what this session took and did not finish. A submission none of whose parts
        reached the SMSC failed for sure; one that did may have been sent (CONNECTION_LOST)."""
        from messaging.models import SmppSubmission

        for claim in self.claims:
            if any(part.written for part in claim.parts):
                self.runner.answer(claim.submission_id, SmppSubmission.SUBMITTING, command_status=CONNECTION_LOST)
            else:
                self.runner.answer(claim.submission_id, SmppSubmission.FAILED)
        self.claims.clear()
        self.outbox.clear()


# --- The runner -----------------------------------------------------------------------------------
class BindRunner:
    """Keeps one carrier bound until `stop` is set: `BindRunner(carrier, inbox).run(stop)`, in a thread of
    its own (it uses that thread's database connection). Receipts and inbound messages go to `inbox`."""

    def __init__(self, carrier, inbox: Inbox):
        self.carrier = carrier
        self.inbox = inbox
        self.name = carrier.name
        self.config = BindConfig.of(carrier)
        self.country = setting(carrier, "country", "")  # where the SMSC's national numbers are
        self.receipts = ReceiptBook(carrier.pk)
        self.inbound = InboundAssembler()
        self._concatenation_reference = random.randrange(256)
        self._bind_id: int | None = None

    def run(self, stop: threading.Event) -> None:
        from messaging.models import SmppBind

        delay = self.config.reconnect_min
        try:
            self._bind_id = SmppBind.objects.get_or_create(carrier=self.carrier)[0].pk
            while not stop.is_set():
                close_old_connections()
                if self._session(stop):
                    delay = self.config.reconnect_min
                if stop.is_set():
                    break
                stop.wait(delay * random.uniform(0.8, 1.2))  # jitter: binds refused together do not retry together
                delay = min(delay * 2, self.config.reconnect_max)
        finally:
            self._record(BIND_FAILED, "Stopped: the bind process was shut down.")
            connections.close_all()

    def _session(self, stop: threading.Event) -> bool:
        """One connection, from connect to close. True if it was bound."""
        link = Link(self.config)
        session = None
        try:
            try:
                link.open()
            except BindRefused as refused:
                logger.error("carrier=%s bind refused: %s", self.name, refused.status)
                self._record(BIND_FAILED, f"Bind refused: {status_description(refused.status)} ({refused.status}).")
                return False
            except OSError as error:
                reason = f"Cannot bind to {self.config.host}:{self.config.port}: {failure_reason(error)}."
                logger.warning("carrier=%s %s", self.name, reason)
                self._record(BIND_CONNECTING, reason)
                return False
            logger.info("carrier=%s bound to %s:%s as %s", self.name, self.config.host, self.config.port,
                        self.config.system_id)
            self._record(BIND_BOUND, "")
            session = _Session(self, link)
            try:
                session.serve(stop)
            except SessionLost as lost:
                logger.warning("carrier=%s session lost: %s", self.name, lost)
                self._record(BIND_CONNECTING, str(lost))
            except OSError as error:
                logger.warning("carrier=%s connection dropped: %s", self.name, failure_reason(error))
                self._record(BIND_CONNECTING, f"The connection to the SMSC dropped: {failure_reason(error)}.")
            except Exception as error:  # the database, or a bug: a new session is the way back
                logger.exception("carrier=%s session failed", self.name)
                self._record(BIND_CONNECTING, f"Internal error: {error}")
            return True
        finally:
            if session is not None:
                session.release()
            link.close()

    # Database ----------------------------------------------------------------------------------
    def _record(self, state: str, error: str) -> None:
        from messaging.models import SmppBind

        try:
            SmppBind.objects.filter(pk=self._bind_id).update(state=state, last_error=error[:300],
                                                             heartbeat_at=timezone.now(), pid=os.getpid())
        except DatabaseError:
            logger.exception("carrier=%s could not record the bind state %s", self.name, state)
            close_old_connections()

    def heartbeat(self) -> None:
        close_old_connections()  # the loop is one long request: drop a connection that went bad or old
        self._record(BIND_BOUND, "")

    def claim_cutoff(self):
        return timezone.now() - timedelta(seconds=self.config.submit_timeout) - CLAIM_MARGIN

    def withdraw_abandoned(self) -> None:
        from messaging.models import SmppSubmission

        SmppSubmission.objects.filter(carrier_id=self.carrier.pk, status=SmppSubmission.PENDING,
                                      created_at__lt=self.claim_cutoff()).update(
            status=SmppSubmission.CANCELED, updated_at=timezone.now())

    def answer(self, submission_id: int, status: str, *, part_ids: list[str] = (), command_status: str = "") -> None:
        """The SMSC's answer for a submission; `part_ids`: the ids of its parts, once it accepted them all."""
        from messaging.models import SmppSubmission

        with transaction.atomic():
            if part_ids:  # before its send sees the answer: a receipt may follow at once
                self.receipts.remember(submission_id, part_ids)
            SmppSubmission.objects.filter(pk=submission_id, status=SmppSubmission.SUBMITTING).update(
                status=status, carrier_message_id=part_ids[0] if part_ids else "", command_status=command_status,
                updated_at=timezone.now())

    def next_concatenation_reference(self) -> int:
        self._concatenation_reference = (self._concatenation_reference + 1) % 256
        return self._concatenation_reference

    # Receipts and inbound messages -------------------------------------------------------------
    def on_receipt(self, pdu) -> None:
        text = decode_receipt(pdu.short_message or pdu.message_payload or b"", pdu.data_coding or 0)
        state = pdu.message_state if isinstance(pdu.message_state, int) else None
        receipt = parse_receipt(text, receipted_message_id=pdu_text(pdu.receipted_message_id), message_state=state,
                                network_error_code=pdu.network_error_code)
        if not receipt.message_id:
            logger.warning("carrier=%s receipt without a message id: %r", self.name, text)
            return
        report = self.receipts.report(receipt)
        if report is None:
            logger.info("carrier=%s part %s delivered; waiting for the other parts", self.name, receipt.message_id)
            return
        self.inbox.report(carrier=self.name, report=report, raw=pdu_record(pdu, text=text))

    def on_inbound(self, pdu, now: float) -> None:
        data = pdu.short_message or pdu.message_payload or b""
        udh = b""
        if (pdu.esm_class or 0) & ESM_CLASS_UDHI:
            udh, data = split_udh(data)
        text = decode_short_message(data, pdu.data_coding or 0)
        sender = address_from_smpp(pdu_text(pdu.source_addr), pdu.source_addr_ton or 0, pdu.source_addr_npi or 0,
                                   self.country)
        to = address_from_smpp(pdu_text(pdu.destination_addr), pdu.dest_addr_ton or 0, pdu.dest_addr_npi or 0,
                               self.country)
        raw = pdu_record(pdu, text=text)
        concatenation = concatenation_of(udh) if udh else None
        if concatenation is None and isinstance(pdu.sar_total_segments, int) and pdu.sar_total_segments > 1:
            concatenation = (pdu.sar_msg_ref_num or 0, pdu.sar_total_segments, pdu.sar_segment_seqnum or 0)
        if concatenation and concatenation[1] > 1:
            reference, total, sequence = concatenation
            whole = self.inbound.add((sender, to, reference, total), total=total, sequence=sequence, text=text,
                                     raw=raw, now=now)
            if whole is None:
                return
            text, raws = whole
            raw = {"parts": raws}
        self._receive(sender, to, text, raw)

    def flush_inbound(self, now: float) -> None:
        for (sender, to, _, _), text, raws in self.inbound.expired(now):
            logger.warning("carrier=%s concatenated message from %s incomplete after %ss; stored as it is",
                           self.name, sender, INBOUND_PART_TTL)
            try:
                self._receive(sender, to, text, {"parts": raws, "incomplete": True})
            except Exception:
                logger.exception("carrier=%s could not store an incomplete inbound message", self.name)

    def _receive(self, sender: str, to: str, text: str, raw: dict) -> None:
        # A deliver_sm carries no id of the SMSC's: the inbound message has none.
        self.inbox.inbound(carrier=self.name, inbound=InboundSms(sender=sender, to=to, body=text), raw=raw)

