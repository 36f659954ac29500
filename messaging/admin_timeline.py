"""One message's whole story for the staff console: its events, carrier attempts, webhook attempts and
ledger entries, merged in time order, in four queries whatever the message's history."""

from django.urls import reverse
from django.utils.html import format_html, format_html_join

from billing.models import LedgerEntry
from billing.pricing import format_amount
from messaging.models import SendAttempt
from webhooks.models import DeliveryAttempt


def render_timeline(message, *, request=None) -> str:
    can_redeliver = bool(request and request.user.has_perm("webhooks.redeliver_event"))
    rows = []
    events = {event.pk: event for event in message.events}
    for event in events.values():
        rows.append((event.created_at, 0, "event", format_html(
            "<strong>{}</strong> (#{}) {}", event.type, event.sequence,
            f"carrier said {event.carrier_status}" if event.carrier_status else ""), event.public_id))
    for attempt in SendAttempt.objects.of([message.pk], since=message.created_at):
        detail = f"{attempt.outcome}, {attempt.latency_ms} ms"
        if attempt.carrier_message_id:
            detail += f", carrier id {attempt.carrier_message_id}"
        if attempt.raw_code or attempt.error_code:
            detail += f", raw {attempt.raw_code or '–'} → {attempt.error_code or '–'}"
        rows.append((attempt.started_at, 1, "carrier attempt",
                     format_html("#{} via <strong>{}</strong>: {}", attempt.number, attempt.carrier, detail), ""))
    for attempt in (DeliveryAttempt.objects.filter(delivery__event_id__in=events).select_related("delivery", "endpoint")
                    .order_by("attempted_at")):
        event = events[attempt.delivery.event_id]
        target = attempt.endpoint.public_id if attempt.endpoint else "status_callback"
        outcome = str(attempt.response_status) if attempt.response_status else attempt.error
        rows.append((attempt.attempted_at, 2, "webhook attempt", format_html(
            "{} → {} ({}): <strong>{}</strong> in {} ms{}", event.type, target, attempt.url, outcome,
            attempt.latency_ms, f", next try {attempt.next_attempt_at:%Y-%m-%d %H:%M:%S}" if attempt.next_attempt_at
            else ""), ""))
    for entry in LedgerEntry.objects.filter(account_id=message.account_id, message_id=message.public_id):
        rows.append((entry.created_at, 3, "ledger", format_html(
            "{} {} {} ({}) {}", entry.type, format_amount(entry.amount), entry.currency, entry.public_id,
            entry.reason), ""))
    rows.sort(key=lambda row: (row[0], row[1]))

    def action(event_id: str) -> str:
        if not (event_id and can_redeliver):
            return ""
        url = reverse("admin:messaging_message_redeliver", args=[message.pk, event_id])
        # The timeline sits inside the admin's change form (forms cannot nest): the button posts that form,
        # with its CSRF token, to the redeliver view instead.
        return format_html('<button type="submit" formaction="{}" formmethod="post" formnovalidate '
                           'class="button redeliver" data-event="{}">Redeliver</button>', url, event_id)

    body = format_html_join("\n", '<tr class="timeline-{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>', (
        (kind.replace(" ", "-"), f"{when:%Y-%m-%d %H:%M:%S}", kind, text, action(event_id))
        for when, _order, kind, text, event_id in rows))
    return format_html('<table id="timeline"><thead><tr><th>time (UTC)</th><th>what</th><th>detail</th><th></th>'
                       '</tr></thead><tbody>{}</tbody></table>', body)
