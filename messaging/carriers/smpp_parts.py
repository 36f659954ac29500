"""What an SMPP bind pieces together and keeps track of: the receipts of a message's parts, which deliver it once
every part is delivered (and fail it as soon as one part fails), what the SMSC's throttling holds back, and an
inbound message concatenated from parts that may arrive in any order."""

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


class Throttle:
    """What an SMSC's throttling slows down, and nothing else. ESME_RMSGQFUL: its queue for one destination is
    full, so that destination waits; ESME_RTHROTTLED: the session is over its rate, so the session's pace is
    halved for as long. `pause`: how long, from the answer that throttled."""

    def __init__(self, tps: int):
        self.tps = tps  # the carrier's own cap; 0 for none
        self._busy: dict[str, tuple[float, str]] = {}  # destination: (until, the status that throttled it)
        self._pace, self._pace_until = 0, 0.0

    def throttled(self, status: str, destination: str, *, now: float, pause: float, sent_last_second: int) -> None:
        if status == "ESME_RMSGQFUL":
            self._busy = {key: value for key, value in self._busy.items() if value[0] > now}
            self._busy[destination] = (now + pause, status)
        else:
            self._pace, self._pace_until = max(1, sent_last_second // 2), now + pause

    def ready_at(self, destination: str) -> float:
        """When `destination` may be sent to again (0.0: now)."""
        return self._busy.get(destination, (0.0, ""))[0]

    def holding(self, destination: str, now: float) -> str:
        """The status that holds `destination` back now, if any."""
        until, status = self._busy.get(destination, (0.0, ""))
        return status if until > now else ""

    def rate(self, now: float) -> int:
        """Submits allowed in any one second now; 0 for no limit."""
        if now < self._pace_until:
            return min(self._pace, self.tps) if self.tps else self._pace
        return self.tps


class Outbox:
    """The parts waiting to be sent, and when each may go: within `tps` submits in any one second, paced down
    after ESME_RTHROTTLED, and once what throttling holds back (a part, its destination) may go again. A part
    has `destination`, `not_before` (monotonic), `held` (the throttling status it last got), `answered` and
    `error`."""

    def __init__(self, tps: int):
        self._parts: deque = deque()
        self._sends: deque[float] = deque()  # when the submits of the last second went
        self.throttle = Throttle(tps)

    def __bool__(self) -> bool:
        return bool(self._parts)

    def add(self, parts: list) -> None:
        self._parts.extend(parts)

    def put_back(self, part, status: str, *, now: float, pause: float) -> None:
        """A part the SMSC throttled: it goes again after `pause`, and the throttle holds back what it names."""
        part.held, part.not_before = status, now + pause
        self.throttle.throttled(status, part.destination, now=now, pause=pause, sent_last_second=self._recent(now))
        self._parts.appendleft(part)

    def take(self, now: float):
        """The first part that may go now, if the rate has a slot; None otherwise. Its send is counted."""
        part = self._first_ready(now) if self._next_slot(now) <= now else None
        if part is not None:
            self._parts.remove(part)
            self._sends.append(now)
        return part

    def has_ready(self, now: float) -> bool:
        return self._first_ready(now) is not None

    def wait(self, now: float) -> float:
        """Seconds until a part may go (the outbox is not empty)."""
        return max(min(map(self._ready_at, self._parts)), self._next_slot(now)) - now

    def give_up(self, parts: list, now: float) -> None:
        """Takes out those of `parts` waiting here that throttling holds back: each is answered, with the
        throttling status as its error."""
        for part in parts:
            held = part.held or self.throttle.holding(part.destination, now)
            if held and not part.answered and part in self._parts:
                self._parts.remove(part)
                part.error, part.answered = held, True

    def keep(self, predicate) -> None:
        self._parts = deque(part for part in self._parts if predicate(part))

    def clear(self) -> None:
        self._parts.clear()

    def _ready_at(self, part) -> float:
        return max(part.not_before, self.throttle.ready_at(part.destination))

    def _first_ready(self, now: float):
        return next((part for part in self._parts if self._ready_at(part) <= now), None)

    def _recent(self, now: float) -> int:
        while self._sends and now - self._sends[0] >= 1.0:
            self._sends.popleft()
        return len(self._sends)

    def _next_slot(self, now: float) -> float:
        rate = self.throttle.rate(now)
        if not rate or self._recent(now) < rate:
            return now
        return self._sends[-rate] + 1.0  # when the oldest of the last `rate` sends is a second old


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
