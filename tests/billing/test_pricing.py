"""The price table: per country, a default for the rest, effective-dated, public."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
import pytest

from billing.models import Price
from billing.pricing import country_for
from billing.selectors import price_in_effect


@pytest.mark.parametrize("number, country", [
    ("+18045550199", "US"), ("+14165550123", "CA"), ("+447400123456", "GB"), ("+4915112345678", "DE"),
    ("+33612345678", "FR"), ("+61412345678", "AU"), ("+80012345678", ""),
])
def test_the_country_comes_from_the_number(number, country):
    assert country_for(number) == country


@pytest.mark.parametrize("country, price", [("GB", "0.04"), ("US", "0.008"), ("FR", "0.008"), ("", "0.008")])
def test_a_country_pays_its_own_price_else_the_default(prices, country, price):
    assert price_in_effect(country=country).unit_price == Decimal(price)


def test_a_price_change_applies_from_its_date_and_never_to_messages_already_sent(prices, live_api, top_up, send):
    top_up("1")
    before = send(client=live_api, to="+447400123456").json()
    Price.objects.create(country="GB", unit_price=Decimal("0.05"), effective_from=timezone.now() - timedelta(seconds=1))

    after = send(client=live_api, to="+447400123456").json()

    assert (before["price"], after["price"]) == ("0.04", "0.05")
    assert live_api.get(f"/v1/messages/{before['id']}").json()["price"] == "0.04"


def test_the_price_table_is_public_with_upcoming_changes(prices, anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer not-a-key")  # a public page ignores credentials

    response = anonymous.get("/v1/pricing")

    assert response.status_code == 200
    table = response.json()
    assert (table["object"], table["unit"]) == ("price_table", "segment")
    assert table["default"]["price"] == "0.008" and table["default"]["country"] is None
    assert [(p["country"], p["price"], p["currency"]) for p in table["countries"]] == [("GB", "0.04", "USD")]
    assert [(p["country"], p["price"]) for p in table["upcoming"]] == [("FR", "0.07")]
    assert all(p["effective_from"].endswith("Z") for p in table["countries"] + table["upcoming"])


def test_with_an_empty_table_the_built_in_default_still_prices(db, anonymous):
    Price.objects.all().delete()

    assert anonymous.get("/v1/pricing").json()["default"]["price"] == "0.008"
    assert price_in_effect(country="GB").unit_price == Decimal("0.008")
