"""Flat pricing: the price of a message is known in code before it is sent. Pure functions."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings


@dataclass(frozen=True)
class Price:
    amount: Decimal
    currency: str


def unit_price() -> Price:
    """The flat price of one segment (0.008 USD unless MITTIS_UNIT_PRICE says otherwise)."""
    return Price(amount=settings.MITTIS_UNIT_PRICE, currency=settings.MITTIS_CURRENCY)


def message_price(*, segments: int) -> Price:
    unit = unit_price()
    return Price(amount=unit.amount * segments, currency=unit.currency)


def format_amount(amount: Decimal) -> str:
    """A money amount as the API shows it: a plain decimal string without trailing zeros ("0.008", "0.016")."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
