import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import mittis.ids
from mittis.migration_ops import unique_by_constraint


class Migration(migrations.Migration):
    """The ledger's public id unique by a constraint (mittis/ids.py; 0003 dropped its LIKE index), and no
    foreign-key index where another index leads with its column (balance_unique_per_mode)."""

    dependencies = [
        ('billing', '0003_fewer_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        unique_by_constraint('billing', 'ledgerentry', 'public_id',
                             models.CharField(default=mittis.ids._txn, editable=False, max_length=40),
                             'ledger_public_id_unique'),
        migrations.AlterField(
            model_name='balance',
            name='account',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='balances', to='accounts.account'),
        ),
    ]
