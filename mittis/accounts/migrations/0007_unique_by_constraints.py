from django.db import migrations, models

import mittis.ids
from mittis.migration_ops import unique_by_constraint


class Migration(migrations.Migration):
    """Unique text columns without their LIKE indexes (mittis/ids.py)."""

    dependencies = [
        ('accounts', '0006_account_api_version'),
    ]

    operations = [
        unique_by_constraint('accounts', 'account', 'public_id',
                             models.CharField(default=mittis.ids._acct, editable=False, max_length=40),
                             'account_public_id_unique'),
        unique_by_constraint('accounts', 'apikey', 'public_id',
                             models.CharField(default=mittis.ids._key, editable=False, max_length=40),
                             'api_key_public_id_unique'),
        unique_by_constraint('accounts', 'apikey', 'hashed_secret', models.CharField(editable=False, max_length=64),
                             'api_key_hashed_secret_unique'),
    ]
