"""The staff console's front page: how Mittis is doing, from a handful of grouped queries."""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Avg, Count, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from messaging import statuses
from messaging.models import Export, Message, SendAttempt
from mittis.replica import replica_reads, replica_state
from webhooks.models import DeliveryAttempt

# Colours by status for the hourly chart (accessible on white, distinct for the common ones).
STATUS_COLOURS = {
    statuses.DELIVERED: "#2e7d32", statuses.SENT: "#66bb6a", statuses.SENDING: "#9ccc65",
    statuses.QUEUED: "#42a5f5", statuses.SCHEDULED: "#90caf9", statuses.UNDELIVERED: "#ef6c00",
    statuses.FAILED: "#c62828", statuses.EXPIRED: "#8d6e63", statuses.CANCELED: "#9e9e9e",
    statuses.RECEIVED: "#7e57c2",
}
CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 720, 160, 4


@dataclass
class CarrierRow:
    carrier: str
    attempts: int
    accepted: int
    avg_latency_ms: float
    delivered: int
    finished: int

    @property
    def delivery_rate(self) -> float | None:
        return self.delivered / self.finished if self.finished else None


@replica_reads()
def dashboard(now=None) -> dict:
    now = now or timezone.now()
    since = now - timedelta(hours=24)
    hours = [since.replace(minute=0, second=0, microsecond=0) + timedelta(hours=n + 1) for n in range(24)]
    per_hour = (Message.objects.filter(created_at__gte=hours[0]).annotate(hour=TruncHour("created_at"))
                .values("hour", "status").annotate(n=Count("id")))
    counts: dict = {}
    for row in per_hour:
        counts.setdefault(row["hour"], {})[row["status"]] = row["n"]

    attempts = (SendAttempt.objects.filter(started_at__gte=since).values("carrier")
                .annotate(n=Count("id"), ok=Count("id", filter=Q(outcome=SendAttempt.ACCEPTED)),
                          latency=Avg("latency_ms")))
    outcomes = (Message.objects.filter(created_at__gte=since, direction=Message.OUTBOUND).exclude(carrier="")
                .values("carrier")
                .annotate(delivered=Count("id", filter=Q(status=statuses.DELIVERED)),
                          finished=Count("id", filter=Q(status__in=[statuses.DELIVERED, statuses.UNDELIVERED,
                                                                    statuses.FAILED]))))
    by_carrier = {o["carrier"]: o for o in outcomes}
    carriers = [CarrierRow(a["carrier"], a["n"], a["ok"], round(a["latency"] or 0), by_carrier.get(a["carrier"], {})
                           .get("delivered", 0), by_carrier.get(a["carrier"], {}).get("finished", 0)) for a in attempts]

    webhooks = DeliveryAttempt.objects.filter(attempted_at__gte=since).aggregate(
        total=Count("id"), ok=Count("id", filter=Q(succeeded=True)))
    return {
        "chart": _stacked_bars(hours, counts),
        "legend": [(status, colour) for status, colour in STATUS_COLOURS.items()],
        "messages_24h": sum(sum(c.values()) for c in counts.values()),
        "carriers": sorted(carriers, key=lambda c: -c.attempts),
        "webhook_attempts": webhooks["total"],
        "webhook_success_rate": webhooks["ok"] / webhooks["total"] if webhooks["total"] else None,
        "queue_depth": _queue_depth(),
        "failed_exports": Export.objects.filter(status=Export.FAILED, created_at__gte=now - timedelta(days=7)).count(),
        "replica": replica_state(),
    }


def _stacked_bars(hours, counts) -> dict:
    """Rectangles for a server-rendered SVG: one bar per hour, stacked by status."""
    peak = max([sum(counts.get(h, {}).values()) for h in hours] + [1])
    bar_width = CHART_WIDTH / len(hours) - BAR_GAP
    bars = []
    for index, hour in enumerate(hours):
        x = index * (bar_width + BAR_GAP)
        y = CHART_HEIGHT
        for status, colour in STATUS_COLOURS.items():
            n = counts.get(hour, {}).get(status, 0)
            if not n:
                continue
            height = n / peak * (CHART_HEIGHT - 20)
            y -= height
            bars.append({"x": round(x, 1), "y": round(y, 1), "width": round(bar_width, 1),
                         "height": round(height, 1), "colour": colour,
                         "title": f"{hour:%H}:00 UTC: {n} {status}"})
    labels = [{"x": round(i * (bar_width + BAR_GAP) + bar_width / 2, 1), "text": f"{h:%H}"}
              for i, h in enumerate(hours) if i % 3 == 0]
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT + 16, "bars": bars, "labels": labels, "peak": peak,
            "axis_y": CHART_HEIGHT + 12}


def _queue_depth() -> int | None:
    """Tasks waiting on the broker, every queue together; None when the broker cannot say."""
    from kombu.exceptions import ChannelError

    from mittis.celery import app, queues

    def waiting(channel, queue: str) -> int:
        try:
            return channel.queue_declare(queue=queue, passive=True).message_count
        except ChannelError:  # never declared: nothing was ever published to it
            return 0

    try:
        with app.connection_for_read() as conn:
            return sum(waiting(conn.default_channel, queue) for queue in queues())
    except Exception:
        return None
