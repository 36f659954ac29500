"""Which carriers may send a message, in which order: routes, weights and circuit breakers.

Test mode always uses the sandbox, so it never reaches a phone. Live messages follow the most
specific route (prefix, then country, then the default route); without any route they go to
`settings.MITTIS_LIVE_CARRIER` (the sandbox on embedded defaults).
"""

from datetime import timedelta
import random

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from messaging.carriers.base import SmsClient
from messaging.carriers.sandbox import SandboxClient

# Consecutive definite failures that open a carrier's breaker, and how long it stays open before
# one message is let through as a probe.
BREAKER_THRESHOLD = 5
BREAKER_COOLDOWN = timedelta(seconds=30)

_SANDBOX = SandboxClient()


def client_for(carrier) -> SmsClient:
    """The adapter for a Carrier row."""
    from messaging.carriers.smpp import SmppClient
    from messaging.carriers.twilio import TwilioClient

    kinds = {"sandbox": SandboxClient, "smpp": SmppClient, "twilio": TwilioClient}
    return kinds[carrier.kind](carrier)


def get_carrier(name: str) -> SmsClient:
    """The adapter that sent (or reports for) messages recorded with carrier `name`."""
    from messaging.models import Carrier

    if name == _SANDBOX.name and not Carrier.objects.filter(name=name).exists():
        return _SANDBOX
    return client_for(Carrier.objects.get(name=name))


def reports_on_request() -> list[str]:
    """The names of the carriers that answer `query_report`: the built-in sandbox and sandbox carriers."""
    from messaging.models import Carrier

    return [_SANDBOX.name, *Carrier.objects.filter(kind="sandbox").exclude(name=_SANDBOX.name)
            .values_list("name", flat=True)]


class RouteTable(list):
    """Every route of a mode with its carriers, and the live fallback carrier: read once for a batch."""

    livemode: bool
    _fallback: list | None = None

    def fallback(self) -> list[SmsClient]:
        """Without a route: the sandbox in test mode; live, MITTIS_LIVE_CARRIER (the sandbox if none)."""
        from messaging.models import Carrier

        if self._fallback is None:
            carrier = (Carrier.objects.filter(name=settings.MITTIS_LIVE_CARRIER, enabled=True).first()
                       if self.livemode else None)
            self._fallback = [client_for(carrier) if carrier else _SANDBOX]
        return self._fallback


def route_table(*, livemode: bool) -> RouteTable:
    from messaging.models import Route

    table = RouteTable(Route.objects.filter(livemode=livemode).prefetch_related("entries__carrier"))
    table.livemode = livemode
    return table


def carriers_for(*, to: str, country: str, livemode: bool, routes: RouteTable | None = None) -> list[SmsClient]:
    """The carriers to try for a message, in order; a carrier whose breaker is open is left out until its
    cool-down has passed, then kept in as a candidate probe (`breaker_take_probe`, at the send, lets exactly
    one send through). Reads only: deciding where a message goes never uses a probe up. `routes`:
    `route_table`'s, if read."""
    if routes is None:
        routes = route_table(livemode=livemode)
    candidates = [r for r in routes if r.prefix and to.startswith(r.prefix)]
    route = (max(candidates, key=lambda r: len(r.prefix)) if candidates
             else next((r for r in routes if not r.prefix and r.country == country), None)
             or next((r for r in routes if not r.prefix and not r.country), None))
    if route is None:
        return list(routes.fallback())
    ordered = []
    entries = [e for e in route.entries.all() if e.carrier.enabled]
    for position in sorted({e.position for e in entries}):
        group = [e for e in entries if e.position == position]
        while group:  # a weighted shuffle: heavier carriers come first more often
            pick = random.choices(group, weights=[max(e.weight, 1) for e in group])[0]
            ordered.append(pick.carrier)
            group.remove(pick)
    return [client_for(c) for c in ordered if _breaker_may_try(c)]


def _breaker_may_try(carrier) -> bool:
    return carrier.breaker_state != carrier.OPEN or carrier.breaker_opened_at <= timezone.now() - BREAKER_COOLDOWN


def breaker_take_probe(carrier) -> bool:
    """Half-open: after the cool-down exactly one send wins the probe of an open breaker, by moving its
    opening time on (the next probe is due a cool-down later). Call just before sending to `carrier`."""
    from messaging.models import Carrier

    now = timezone.now()
    return Carrier.objects.filter(pk=carrier.pk, breaker_state=Carrier.OPEN,
                                  breaker_opened_at__lte=now - BREAKER_COOLDOWN).update(
        breaker_opened_at=now) == 1


def breaker_record(carrier_name: str, *, ok: bool) -> None:
    """Count a definite success or failure. A success closes the breaker; a run of failures opens it."""
    from messaging.models import Carrier

    carriers = Carrier.objects.filter(name=carrier_name)
    if ok:
        carriers.filter(Q(breaker_failures__gt=0) | ~Q(breaker_state=Carrier.CLOSED)).update(
            breaker_state=Carrier.CLOSED, breaker_failures=0, breaker_opened_at=None)
        return
    carriers.update(breaker_failures=F("breaker_failures") + 1)
    carriers.filter(breaker_failures__gte=BREAKER_THRESHOLD).exclude(breaker_state=Carrier.OPEN).update(
        breaker_state=Carrier.OPEN, breaker_opened_at=timezone.now())
    # A failed probe keeps it open for another cool-down.
    carriers.filter(breaker_state=Carrier.OPEN).update(breaker_opened_at=timezone.now())
