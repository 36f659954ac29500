from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Price
from billing.services import balance_top_up
from tests.factories import api_key_for


@pytest.fixture
def prices(db):
    """The seeded default (0.008) plus Britain at 0.04 and a French price announced for next month."""
    now = timezone.now()
    Price.objects.update_or_create(country="", defaults={"unit_price": Decimal("0.008"),
                                                         "effective_from": now - timedelta(days=365)})
    Price.objects.create(country="GB", unit_price=Decimal("0.04"), effective_from=now - timedelta(days=30))
    Price.objects.create(country="FR", unit_price=Decimal("0.07"), effective_from=now + timedelta(days=30))


@pytest.fixture
def live_api(account):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    return client


@pytest.fixture
def top_up(account):
    def _top_up(amount):
        return balance_top_up(account_id=account.pk, livemode=True, amount=Decimal(amount))
    return _top_up
