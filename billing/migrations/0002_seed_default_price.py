"""The default price every install starts with: 0.008 USD per segment, to every country."""

from datetime import datetime, timezone
from decimal import Decimal

from django.db import migrations

DEFAULT_UNIT_PRICE = Decimal("0.008")  # frozen here: billing.pricing.DEFAULT_UNIT_PRICE may change later

SINCE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def seed(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    if not Price.objects.filter(country="").exists():
        Price.objects.create(country="", unit_price=DEFAULT_UNIT_PRICE, currency="USD", effective_from=SINCE)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
