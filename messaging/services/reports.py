"""Applying what carriers report, one report or a batch alike: every report is recorded raw, and applied
under its message's row lock, never moving a status backwards. A report for an id we do not know yet is
kept, and applied when a send learns that id (`messages_apply_waiting_reports`)."""

from dataclasses import asdict, dataclass
import logging

from django.db import connection, transaction
from django.db.models import Q

from messaging import statuses
from messaging.carriers.base import DeliveryReport, storable
from messaging.models import CarrierReport, Message
from messaging.services.transitions import BatchWrites, transition
from mittis.celery import enqueue
from mittis.db import insert_many, quoted_table

logger = logging.getLogger(__name__)


def reports_enqueue(carrier: str, reports: list[DeliveryReport], *, delay: float, attempts: dict) -> None:
    """Reports a carrier gave with its acceptance (the sandbox), applied after `delay`: at once without one
    (`attempts`: by carrier message id, the messages' attempts, known to the caller), else by a task."""
    if not delay:
        messages_apply_delivery_reports(carrier=carrier, reports=reports, attempts=attempts)
        return
    enqueue("messaging.process_delivery_reports",
            kwargs={"carrier": carrier, "reports": [asdict(report) for report in reports]}, countdown=delay)


def message_apply_delivery_report(*, carrier: str, report: DeliveryReport, raw: dict | None = None) -> Message | None:
    """One report: a batch of one. The message it applied to, or None when it was kept for a later match."""
    return messages_apply_delivery_reports(carrier=carrier, reports=[report], raws=[raw or {}])[0]


@dataclass(frozen=True)
class _Incoming:
    report: DeliveryReport
    raw: dict
    kept: int | None = None  # the CarrierReport that recorded it earlier, unmatched then


def messages_apply_delivery_reports(*, carrier: str, reports: list[DeliveryReport], raws: list[dict] | None = None,
                                    attempts: dict | None = None) -> list[Message | None]:
    """Apply reports of one carrier under their messages' row locks, written together. A report is matched
    by our reference first (a carrier that echoes it, such as Twilio's callback URL, or the SMPP bind that
    knows which message it sent: then the carrier took the message although its answer may not have reached
    us, and now we know its id), else by the carrier's id (`_match`). Returns, per report, its message or
    None (kept for a later match). `attempts`: by carrier message id, known ones."""
    raws = raws or [{} for _ in reports]
    return _apply(carrier, [_Incoming(storable(report), storable(raw)) for report, raw in zip(reports, raws)],
                  attempts or {})


def messages_apply_waiting_reports(sent: set[tuple[str, str]]) -> None:
    """Apply the kept reports that overtook the carrier's answer to the submit, now that (carrier, carrier
    message id) pairs `sent` are known."""
    if not sent:
        return
    matches = Q()
    for carrier, carrier_message_id in sent:
        matches |= Q(carrier=carrier, carrier_message_id=carrier_message_id)
    waiting: dict[str, list[_Incoming]] = {}
    for kept in CarrierReport.objects.filter(matches, message__isnull=True).order_by("id"):
        waiting.setdefault(kept.carrier, []).append(
            _Incoming(DeliveryReport(**kept.raw["report"]), kept.raw.get("received", {}), kept.pk))
    for carrier, incoming in waiting.items():
        _apply(carrier, incoming, {})


def _apply(carrier: str, incoming: list[_Incoming], attempts: dict) -> list[Message | None]:
    references = [item.report.reference for item in incoming if item.report.reference]
    matches = Q(carrier=carrier, carrier_message_id__in=[item.report.carrier_message_id for item in incoming])
    if references:
        matches |= Q(public_id__in=references)
    with transaction.atomic():
        locked = list(Message.objects.select_for_update().filter(matches).order_by("pk"))
        by_reference = {m.public_id: m for m in locked}
        # A carrier id several messages share (an SMSC that restarted begins its ids again) is the newest
        # message's still waiting for its outcome, else the newest's: never a final one over one still waiting.
        by_carrier_id = {m.carrier_message_id: m for m in sorted(locked, key=_newest_waiting_last)
                         if m.carrier == carrier and m.carrier_message_id}
        writes = BatchWrites()
        found = [_match(carrier, item.report, by_reference, by_carrier_id, writes) for item in incoming]
        for item, message in zip(incoming, found):
            if message is not None and item.report.carrier_message_id in attempts:
                writes.know_attempts(message.pk, attempts[item.report.carrier_message_id])
        writes.load_attempts([message for message in found if message is not None])
        records, matched_kept = [], []
        for item, message in zip(incoming, found):
            report = item.report
            if item.kept is None:
                records.append(CarrierReport(carrier=carrier, carrier_message_id=report.carrier_message_id,
                                             status=report.status, raw={"report": asdict(report), "received": item.raw},
                                             message=message))
            elif message is not None:
                matched_kept.append((item.kept, message.pk))
            if message is None:
                logger.info("carrier=%s report for unknown message %s kept for a later match", carrier,
                            report.carrier_message_id)
                continue
            _apply_report_locked(message, carrier, report, writes)
        insert_many(records)
        _match_kept(matched_kept)
        writes.save()
    return found


def _newest_waiting_last(message: Message) -> tuple[bool, int]:
    return not statuses.is_final(message.status), message.pk


def _match(carrier: str, report: DeliveryReport, by_reference: dict, by_carrier_id: dict,
           writes: BatchWrites) -> Message | None:
    """The one rule that finds a report's message, for every carrier: the message our reference names (the carrier
    echoes it, or the SMPP bind knows which message it sent), else the one the carrier's id names."""
    message = by_reference.get(report.reference) if report.reference else None
    if message is None:
        return by_carrier_id.get(report.carrier_message_id)
    if not message.carrier_message_id:  # the carrier's answer to the submit did not reach us (yet)
        message.carrier, message.carrier_message_id = carrier, report.carrier_message_id
        writes.changed(message, ["carrier", "carrier_message_id"])
        by_carrier_id[report.carrier_message_id] = message
    return message


def _match_kept(pairs: list[tuple[int, int]]) -> None:
    """Point kept reports at the messages they turned out to be about (report id, message id)."""
    if not pairs:
        return
    table = quoted_table(CarrierReport)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET message_id = data.message_id FROM (SELECT unnest(%s::bigint[]) AS id, "
                       f"unnest(%s::bigint[]) AS message_id) AS data WHERE {table}.id = data.id",
                       [[report for report, _ in pairs], [message for _, message in pairs]])


def _apply_report_locked(message: Message, carrier: str, report: DeliveryReport, writes: BatchWrites) -> None:
    """The status change a report makes, if any. Precondition: the caller holds the message's row lock."""
    if message.status == statuses.SENDING and report.status in (statuses.DELIVERED, statuses.UNDELIVERED):
        # The report overtook the submit's answer: the message was sent first.
        transition(message, statuses.SENT, writes)
    if not statuses.can_transition(message.status, report.status):
        logger.info("carrier=%s report %s ignored for %s in status %s", carrier, report.status,
                    message.public_id, message.status)
        return
    changes = {"carrier_status": report.carrier_status}
    if report.status not in (statuses.DELIVERED, statuses.SENT):
        changes.update(error_code=report.error_code or "unknown_error",
                       error_message=report.error_message or "The carrier did not deliver the message.")
    transition(message, report.status, writes, **changes)
