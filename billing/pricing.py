"""Flat pricing, pure: what a message costs follows from its country and segment count alone."""

from dataclasses import dataclass
from decimal import Decimal
import functools

import phonenumbers

from mittis.numbers import parsed

# The price of a segment to any country the price table does not name, until staff set another.
DEFAULT_UNIT_PRICE = Decimal("0.008")
DEFAULT_CURRENCY = "USD"


@dataclass(frozen=True)
class Quote:
    country: str  # ISO 3166 alpha-2, or "" when the number belongs to no country
    unit_price: Decimal
    segments: int
    amount: Decimal
    currency: str


def country_for(number: str) -> str:
    """The ISO 3166 alpha-2 country of an E.164 number ("" for non-geographic numbers)."""
    parsed_number = parsed(number)
    if parsed_number is None:
        return ""
    region = phonenumbers.region_code_for_number(parsed_number)
    return region if region and region.isalpha() and len(region) == 2 else ""


def quote(*, country: str, unit_price: Decimal, currency: str, segments: int) -> Quote:
    return Quote(country=country, unit_price=unit_price, segments=segments, amount=unit_price * segments,
                 currency=currency)


@functools.lru_cache(maxsize=4096)  # a few prices recur in every list and export; equal amounts format alike
def format_amount(amount: Decimal) -> str:
    """A money amount as the API shows it: a plain decimal string without trailing zeros ("0.008", "-1.5")."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
