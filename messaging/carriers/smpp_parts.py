"""What an SMPP bind pieces together and keeps track of: the receipts of a message's parts, which deliver it once
every part is delivered (and fail it as soon as one part fails), and an inbound message concatenated from parts
that may arrive in any order."""

from collections import deque
from dataclasses import dataclass, field

from messaging import statuses
from messaging.carriers.base import DeliveryReport
from messaging.carriers.smpp import Receipt, delivery_report


INBOUND_PART_TTL = 300.0  # a concatenated inbound message still missing parts then is stored as it is


class ReceiptBook:
    """The parts of the messages a carrier's bind sent (SmppPart rows), so that any part's receipt lands on its
    message by our reference and the first part's id, after a restart of the bind too. A delivered message
    waits for the receipts of all its parts; a failed part fails it at once (the handset cannot show it whole)."""

    def __init__(self, carrier_id: int):
        self.carrier_id = carrier_id

    def remember(self, submission_id: int, part_ids: list[str]) -> None:
        from messaging.models import SmppPart

        SmppPart.objects.bulk_create([
            SmppPart(submission_id=submission_id, carrier_id=self.carrier_id, message_id=part_id, number=number,
                     total=len(part_ids)) for number, part_id in enumerate(part_ids, start=1)])

    def report(self, receipt: Receipt) -> DeliveryReport | None:
        """The report to apply for this receipt, or None while a delivered message waits for the
        receipts of its other parts. A part we never sent is reported by its own id."""
        from messaging.models import SmppPart

        # The SMSC may have begun its ids again since: the newest part with this id is the one it reports on.
        part = (SmppPart.objects.filter(message_id=receipt.message_id, carrier_id=self.carrier_id)
                .select_related("submission").order_by("-id").first())
        if part is None:
            return delivery_report(receipt, carrier_message_id=receipt.message_id)
        report = delivery_report(receipt, carrier_message_id=part.submission.carrier_message_id,
                                 reference=part.submission.reference)
        if report.status == statuses.DELIVERED and part.total > 1:
            SmppPart.objects.filter(pk=part.pk).update(delivered=True)
            if SmppPart.objects.filter(submission_id=part.submission_id, delivered=False).exists():
                return None
        return report


class ReceiptsAfterAnswers:
    """Receipts that came while submits were unanswered, each waiting for those answers (an SMSC may send a
    receipt before its submit_sm_resp, and its id may also be an older message's), and for those before it."""

    def __init__(self):
        self._queue: deque[tuple[object, set[int]]] = deque()

    def wait(self, pdu, unanswered: set[int]) -> bool:
        """True if the receipt must wait for the submits `unanswered` (sequence numbers), or for others."""
        if not unanswered and not self._queue:
            return False
        self._queue.append((pdu, unanswered))
        return True

    def ready(self, unanswered) -> list:
        """The receipts, in their order, that wait for none of the submits still `unanswered`."""
        ready = []
        while self._queue and not self._queue[0][1] & unanswered:
            ready.append(self._queue.popleft()[0])
        return ready


@dataclass
class _Partial:
    total: int
    first_seen: float
    texts: dict[int, str] = field(default_factory=dict)
    raws: list[dict] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.texts[sequence] for sequence in sorted(self.texts))


class InboundAssembler:
    """Joins the parts of a concatenated inbound message, which may arrive in any order."""

    def __init__(self, ttl: float = INBOUND_PART_TTL):
        self._ttl = ttl
        self._partials: dict[tuple, _Partial] = {}

    def add(self, key: tuple, *, total: int, sequence: int, text: str, raw: dict,
            now: float) -> tuple[str, list[dict]] | None:
        """The whole text and every part's raw PDU once the last part is in; None until then."""
        partial = self._partials.setdefault(key, _Partial(total=total, first_seen=now))
        partial.texts[sequence] = text
        partial.raws.append(raw)
        if len(partial.texts) < partial.total:
            return None
        del self._partials[key]
        return partial.text(), partial.raws

    def expired(self, now: float) -> list[tuple[tuple, str, list[dict]]]:
        """The messages still missing parts after the TTL, as far as they came: better a gap than a loss."""
        stale = [key for key, partial in self._partials.items() if now - partial.first_seen > self._ttl]
        return [(key, partial.text(), partial.raws) for key in stale for partial in [self._partials.pop(key)]]
