"""Reads for prices, balances and the ledger."""

from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal
import time

from django.db.models import QuerySet
from django.utils import timezone

from billing.models import Balance, LedgerEntry, Price
from billing.pricing import DEFAULT_CURRENCY, DEFAULT_UNIT_PRICE, Quote, quote

# Stands in for the default row when the table has none (a fresh or emptied table): prices never fail.
_BUILT_IN_DEFAULT = Price(country="", unit_price=DEFAULT_UNIT_PRICE, currency=DEFAULT_CURRENCY,
                          effective_from=datetime(2026, 1, 1, tzinfo=dt_timezone.utc))


@dataclass(frozen=True)
class PriceTable:
    default: Price
    countries: list[Price]  # the price in effect for each country with its own row
    upcoming: list[Price]  # changes that take effect later


# Every send is priced: the price table (a few rows) is read once a minute, not per request. Rows are
# effective-dated, so an announced change still applies at its exact time; a row added for the past
# would take up to a minute to apply everywhere (staff add prices ahead of time).
# Kept in the process itself, not in Django's cache, which unpickled the rows on every read.
PRICE_CACHE_SECONDS = 60
_prices: tuple[float, list[Price]] | None = None  # (good until, on time.monotonic(); the rows, newest first)


def _all_prices() -> list[Price]:
    global _prices
    cached = _prices
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    prices = list(Price.objects.order_by("-effective_from"))
    _prices = (time.monotonic() + PRICE_CACHE_SECONDS, prices)
    return prices


def prices_changed() -> None:
    global _prices
    _prices = None


def price_in_effect(*, country: str, at: datetime | None = None) -> Price:
    """The country's own price in effect at `at` (default now), else the default price."""
    at = at or timezone.now()
    in_effect = [price for price in _all_prices() if price.effective_from <= at]  # newest first
    own = next((p for p in in_effect if country and p.country == country), None)
    return own or next((p for p in in_effect if p.country == ""), None) or _BUILT_IN_DEFAULT


def message_quote(*, country: str, segments: int) -> Quote:
    price = price_in_effect(country=country)
    return quote(country=country, unit_price=price.unit_price, currency=price.currency, segments=segments)


def price_table(*, at: datetime | None = None) -> PriceTable:
    at = at or timezone.now()
    in_effect: dict[str, Price] = {}
    for price in Price.objects.filter(effective_from__lte=at).order_by("country", "-effective_from"):
        in_effect.setdefault(price.country, price)
    upcoming = list(Price.objects.filter(effective_from__gt=at).order_by("effective_from", "country"))
    default = in_effect.pop("", None) or _BUILT_IN_DEFAULT
    return PriceTable(default=default, countries=[in_effect[c] for c in sorted(in_effect)], upcoming=upcoming)


def balance_get(*, account_id: int, livemode: bool) -> Balance:
    """The balance, or an unsaved zero balance for an account that never had money."""
    return (Balance.objects.filter(account_id=account_id, livemode=livemode).first()
            or Balance(account_id=account_id, livemode=livemode, amount=Decimal(0)))


def ledger_scope(*, account_id: int, livemode: bool) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(account_id=account_id, livemode=livemode)
