"""Routes pick the carriers for a destination: most specific first, in order, split by weight."""

from collections import Counter
import random

import pytest

from messaging.carriers.registry import carriers_for
from messaging.models import Carrier, Route, RouteCarrier


def carrier(name, kind="sandbox", **fields):
    return Carrier.objects.create(name=name, kind=kind, **fields)


def route(*carriers, prefix="", country="", livemode=True, **weights):
    r = Route.objects.create(prefix=prefix, country=country, livemode=livemode)
    for position, c in enumerate(carriers, start=1):
        RouteCarrier.objects.create(route=r, carrier=c, position=position, weight=weights.get(c.name, 1))
    return r


def names(to, country, livemode=True):
    return [c.name for c in carriers_for(to=to, country=country, livemode=livemode)]


@pytest.fixture
def carriers(db):
    return carrier("uk-direct"), carrier("uk-mobile"), carrier("global"), carrier("backup")


def test_the_most_specific_route_wins(carriers):
    uk_direct, uk_mobile, global_, backup = carriers
    route(global_, backup)
    route(uk_direct, backup, country="GB")
    route(uk_mobile, uk_direct, prefix="+4474")
    route(uk_direct, prefix="+44740")

    assert names("+447400123456", "GB") == ["uk-direct"]  # the longest prefix
    assert names("+447412345678", "GB") == ["uk-mobile", "uk-direct"]
    assert names("+442071234567", "GB") == ["uk-direct", "backup"]
    assert names("+18045550199", "US") == ["global", "backup"]


def test_without_any_route_live_messages_go_to_the_configured_carrier_and_test_mode_to_the_sandbox(db, settings):
    settings.MITTIS_LIVE_CARRIER = "sandbox"
    assert names("+18045550199", "US") == ["sandbox"]
    carrier("global")
    route(Carrier.objects.get(name="global"), livemode=True)
    assert names("+18045550199", "US", livemode=False) == ["sandbox"]


def test_a_disabled_carrier_is_skipped(carriers):
    uk_direct, uk_mobile, global_, backup = carriers
    route(global_, backup)
    Carrier.objects.filter(name="global").update(enabled=False)

    assert names("+18045550199", "US") == ["backup"]


def test_carriers_sharing_a_position_split_traffic_by_weight(carriers):
    uk_direct, uk_mobile, global_, backup = carriers
    r = Route.objects.create(livemode=True)
    RouteCarrier.objects.create(route=r, carrier=global_, position=1, weight=3)
    RouteCarrier.objects.create(route=r, carrier=uk_direct, position=1, weight=1)
    RouteCarrier.objects.create(route=r, carrier=backup, position=2, weight=1)
    random.seed(20261129)  # deterministic: the split is by weight, the draw is pseudo-random

    orders = [tuple(names("+18045550199", "US")) for _ in range(400)]

    firsts = Counter(order[0] for order in orders)
    assert set(orders) == {("global", "uk-direct", "backup"), ("uk-direct", "global", "backup")}
    assert 0.65 < firsts["global"] / 400 < 0.85


def test_an_open_breaker_leaves_the_carrier_out_until_its_probe(carriers):
    from datetime import timedelta

    from django.utils import timezone

    from messaging.carriers.registry import BREAKER_COOLDOWN, BREAKER_THRESHOLD, breaker_record, breaker_take_probe

    uk_direct, uk_mobile, global_, backup = carriers
    route(global_, backup)
    for _ in range(BREAKER_THRESHOLD):
        breaker_record("global", ok=False)

    assert Carrier.objects.get(name="global").breaker_state == "open"
    assert names("+18045550199", "US") == ["backup"]
    Carrier.objects.filter(name="global").update(breaker_opened_at=timezone.now() - BREAKER_COOLDOWN - timedelta(seconds=1))
    assert names("+18045550199", "US") == ["global", "backup"]  # a candidate for its probe...
    assert names("+18045550199", "US") == ["global", "backup"]  # ...which routing alone never uses up
    assert breaker_take_probe(Carrier.objects.get(name="global"))  # the send that probes it
    assert not breaker_take_probe(Carrier.objects.get(name="global"))  # only one
    assert names("+18045550199", "US") == ["backup"]  # the next probe is a cool-down away
    breaker_record("global", ok=True)
    assert Carrier.objects.get(name="global").breaker_state == "closed"
    assert names("+18045550199", "US") == ["global", "backup"]
