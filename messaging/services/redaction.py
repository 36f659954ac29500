"""Redaction: a final message's body removed from everywhere it is kept, at once or past its account's
retention. Status, segments and price stay, so usage and billing still add up."""

from datetime import timedelta

from django.db import transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from messaging import exports, statuses
from messaging.models import CarrierInbound, CarrierReport, Message, RetentionMark, SmppSubmission
from mittis.accounts.models import Account
from mittis.errors import DomainError
from mittis.signals import object_redacted
from webhooks import services as webhooks


def message_redact(*, message: Message) -> Message:
    """Remove a final message's body everywhere we keep it: the message, its events' payloads (its timeline
    and what webhooks retry), carrier reports, an inbound message as received, SMPP hand-overs, export
    files (re-written by a task once committed), and (through `object_redacted`) what other parts of
    Mittis kept, such as stored idempotent answers."""
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message.pk)
        if message.redacted_at:
            return message
        if not statuses.is_final(message.status):
            raise DomainError("message_not_redactable",
                           f"Only a message in a final status can be redacted; this one is {message.status}.")
        files = _redact_locked(message)
        transaction.on_commit(lambda: exports.exports_scrub_enqueue(files))
    return message


def _redact_locked(message: Message) -> list[int]:
    """Call holding the message's row lock. Returns the exports whose file is to be re-written once committed
    (`exports.exports_scrub_enqueue`): those are not served until then."""
    now = timezone.now()
    message.body, message.redacted_at = "", now
    message.save(update_fields=["body", "redacted_at", "updated_at"])
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    webhooks.events_redact(object_id=message.public_id, since=message.created_at, redacted_at=stamp)
    reports = list(CarrierReport.objects.filter(message=message).only("pk", "raw"))
    for report in reports:
        report.raw = {"report": report.raw.get("report", {}), "received": "redacted"}
    CarrierReport.objects.bulk_update(reports, ["raw"])
    SmppSubmission.objects.filter(reference=message.public_id).update(body="")
    CarrierInbound.objects.filter(message=message).update(body="", raw="redacted")
    object_redacted.send(sender=Message, account_id=message.account_id, livemode=message.livemode,
                         object_id=message.public_id, created_at=message.created_at,
                         changes={"body": None, "redacted_at": stamp})
    return exports.exports_mark_redacted(account_id=message.account_id, livemode=message.livemode,
                                         created_at=message.created_at)


def messages_redact_past_retention(*, batch: int = 500) -> int:
    """Redact every message older than its account's retention (a nightly beat task). An export file holding
    many of them is re-written once, after the account's last.

    Each account's candidates are read from its RetentionMark (everything created before it is redacted) up to the
    cutoff, oldest first, a batch at a time: a bounded range of message_retention_idx (an account's messages not yet
    redacted, by age), which holds only the night's work and the few messages not final yet, since a message
    redacted leaves it. The mark moves up as batches finish, to the first message not final yet (scheduled weeks
    ahead: it is passed once a night) or to where the batch ended, and at the end to the cutoff.

    A retention made shorter moves the cutoff up: the next night reads from the mark to it. One made longer moves
    the cutoff below the mark: nothing is due, and the mark stays (what it passed stays redacted) until the cutoff
    passes it again; it never moves down."""
    redacted = 0
    now = timezone.now()
    accounts = (Account.objects.select_related("retention_mark")
                .only("pk", "retention_days", "created_at", "retention_mark__redacted_before"))
    for account in accounts.iterator():
        mark = getattr(account, "retention_mark", None)
        start = mark.redacted_before if mark else account.created_at
        cutoff = now - timedelta(days=account.retention_days)
        if start < cutoff:
            redacted += _redact_account_past(account.pk, start=start, cutoff=cutoff, batch=batch,
                                             settled=now - SETTLED_AFTER)
    return redacted


# A message is committed within this long of its `created_at` (a request's transaction: an idle one is ended after
# MITTIS_ABANDONED_REQUEST_SECONDS). The mark stays this far behind now, so that no message committed after a
# night's read is left behind it (a retention of 0 days).
SETTLED_AFTER = timedelta(hours=1)


def _redact_account_past(account_id: int, *, start, cutoff, batch: int, settled) -> int:
    """Redact the account's final messages created in [start, cutoff); move its mark. Returns how many."""
    redacted, files = 0, set()
    after, seen_at_after, held_at = start, set(), None  # held_at: the first message not final yet
    while True:
        rows = list(Message.objects.filter(_created_in(account_id, after, cutoff), redacted_at__isnull=True)
                    .exclude(pk__in=seen_at_after).order_by("account_id", "created_at")
                    .values_list("pk", "created_at", "status")[:batch])
        for message_id, created_at, status in rows:
            if status not in statuses.FINAL:
                held_at = held_at or created_at
                continue
            with transaction.atomic():  # final is for good: no need to read the status again under the lock
                message = Message.objects.select_for_update().get(pk=message_id)
                if not message.redacted_at:
                    files.update(_redact_locked(message))
                    redacted += 1
        if len(rows) < batch:
            _mark(account_id, min(held_at or cutoff, settled))
            break
        # Ties with the batch's last come again, but for those read already (the redacted ones left the index).
        last = rows[-1][1]
        seen_at_after = (seen_at_after if last == after else set()) | {
            pk for pk, created_at, _status in rows if created_at == last}
        after = last
        _mark(account_id, min(held_at or after, settled))  # before `after`: those at it may be left
    exports.exports_scrub_enqueue(sorted(files))
    return redacted


def _created_in(account_id: int, start, end) -> RawSQL:
    """The account's messages created in [start, end), as one range of the key (account_id, created_at), which
    message_retention_idx alone holds, in that order (order by both). As `account_id` and bounds of `created_at`,
    PostgreSQL could read them from message_created_idx too, every account's messages of the range, and did when
    its statistics made that index look cheaper (a one-column index). The account is in the range alone: with
    `account_id = …` beside it, PostgreSQL starts the scan at the range's start but does not stop at its end (an
    empty range read 500 pages of an account's 1 M messages, against 3). tests/test_indexes.py holds the plan."""
    key = f'("{Message._meta.db_table}"."account_id", "{Message._meta.db_table}"."created_at")'
    return RawSQL(f"{key} >= (%s, %s) AND {key} < (%s, %s)", [account_id, start, account_id, end],
                  output_field=BooleanField())


def _mark(account_id: int, redacted_before) -> None:
    RetentionMark.objects.bulk_create([RetentionMark(account_id=account_id, redacted_before=redacted_before)],
                                      update_conflicts=True, unique_fields=["account"],
                                      update_fields=["redacted_before"])
