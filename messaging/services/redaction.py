"""Redaction: a final message's body removed from everywhere it is kept, at once or past its account's
retention. Status, segments and price stay, so usage and billing still add up."""

from datetime import timedelta

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from messaging import exports, statuses
from messaging.models import CarrierInbound, CarrierReport, Message, SmppSubmission
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

    The candidates come from message_retention_idx (an account's messages not yet redacted, by age), between a lower
    bound and the cutoff: first the account's oldest message not redacted (the index's first entry), then where the
    last batch ended. Without the bound PostgreSQL, which takes "not redacted" and "old" for independent, expects
    candidates everywhere and walks message_created_idx from the oldest message (1.2 s at 2 M). A message redacted
    leaves the index; one not final yet (scheduled weeks ahead) is passed once a night, not once a batch."""
    redacted = 0
    now = timezone.now()
    for account in Account.objects.all().only("pk", "retention_days").iterator():
        cutoff = now - timedelta(days=account.retention_days)
        files = set()
        after = (Message.objects.filter(account_id=account.pk, redacted_at__isnull=True)
                 .aggregate(oldest=Min("created_at"))["oldest"])
        while after is not None and after < cutoff:
            # Ties with the last batch's end come again: they were redacted meanwhile, and are gone from the index.
            rows = list(Message.objects.filter(account_id=account.pk, created_at__gte=after, created_at__lt=cutoff,
                                               redacted_at__isnull=True, status__in=statuses.FINAL)
                        .order_by("created_at").values_list("pk", "created_at")[:batch])
            if not rows:
                break
            after = rows[-1][1]
            for message_id, _created_at in rows:
                with transaction.atomic():
                    message = Message.objects.select_for_update().get(pk=message_id)
                    if not message.redacted_at:
                        files.update(_redact_locked(message))
                        redacted += 1
        exports.exports_scrub_enqueue(sorted(files))
    return redacted
