"""What an SMPP bind pieces together: the receipts of a multi-part message's parts, which deliver it once every
part is delivered (and fail it as soon as one part fails), and an inbound message concatenated from parts that
may arrive in any order."""

from collections import OrderedDict
from dataclasses import dataclass, field

from messaging import statuses
from messaging.carriers.base import DeliveryReport
from messaging.carriers.smpp import Receipt, delivery_report


RECEIPT_BOOK_SIZE = 200_000  # part ids remembered; receipts come within the validity period (~2 days)


INBOUND_PART_TTL = 300.0  # a concatenated inbound message still missing parts then is stored as it is


@dataclass
class _Sent:
    part_ids: tuple[str, ...]
    reference: str
    delivered: set[str] = field(default_factory=set)


class ReceiptBook:
    """The parts of the messages this bind sent recently, so that any part's receipt lands on its
    message (by the first part's id, and by our reference should the receipt overtake the send)."""

    def __init__(self, size: int = RECEIPT_BOOK_SIZE):
        self._size = size
        self._by_part: OrderedDict[str, _Sent] = OrderedDict()

    def remember(self, part_ids: list[str], reference: str) -> None:
        sent = _Sent(tuple(part_ids), reference)
        for part_id in part_ids:
            self._by_part[part_id] = sent
            self._by_part.move_to_end(part_id)
        while len(self._by_part) > self._size:
            self._by_part.popitem(last=False)

    def report(self, receipt: Receipt) -> DeliveryReport | None:
        """The report to apply for this receipt, or None while a delivered message waits for the
        receipts of its other parts."""
        sent = self._by_part.get(receipt.message_id)
        if sent is None:
            return delivery_report(receipt, carrier_message_id=receipt.message_id)
        report = delivery_report(receipt, carrier_message_id=sent.part_ids[0], reference=sent.reference)
        if report.status == statuses.DELIVERED and len(sent.part_ids) > 1:
            sent.delivered.add(receipt.message_id)
            if len(sent.delivered) < len(sent.part_ids):
                return None
        return report


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
