import django.db.models.deletion
from django.db import migrations, models

import mittis.ids
from mittis.migration_ops import unique_by_constraint


class Migration(migrations.Migration):
    """Unique text columns without their LIKE indexes (mittis/ids.py; the delivery attempts' was 703 MiB at 5 M
    messages), and no foreign-key index where another index leads with its column (attempt_endpoint_idx,
    endpoint_list_idx, callback_secret_unique)."""

    dependencies = [
        ('webhooks', '0006_webhookendpoint_api_version'),
    ]

    operations = [
        unique_by_constraint('webhooks', 'webhookendpoint', 'public_id',
                             models.CharField(default=mittis.ids._we, editable=False, max_length=40),
                             'endpoint_public_id_unique'),
        unique_by_constraint('webhooks', 'event', 'public_id', models.CharField(editable=False, max_length=40),
                             'event_public_id_unique'),
        unique_by_constraint('webhooks', 'deliveryattempt', 'public_id',
                             models.CharField(default=mittis.ids._whd, editable=False, max_length=40),
                             'delivery_attempt_public_id_unique'),
        migrations.AlterField(
            model_name='callbacksecret',
            name='account',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.account'),
        ),
        migrations.AlterField(
            model_name='deliveryattempt',
            name='endpoint',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='attempts', to='webhooks.webhookendpoint'),
        ),
        migrations.AlterField(
            model_name='webhookendpoint',
            name='account',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='webhook_endpoints', to='accounts.account'),
        ),
    ]
