from django.db import migrations, models

from mittis.partitions import partition_by_month


class Migration(migrations.Migration):
    """Delivery attempts partitioned by month of `attempted_at` (issue 28): old months are dropped whole
    (mittis/partitions.py). The public id's unique constraint becomes an index: see mittis/partitions.py."""

    dependencies = [
        ('webhooks', '0008_event_status'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name='deliveryattempt', name='delivery_attempt_public_id_unique'),
                migrations.AddIndex(model_name='deliveryattempt', index=models.Index(
                    fields=['public_id'], name='delivery_attempt_public_id_idx')),
            ],
            database_operations=[partition_by_month(
                'webhooks', 'deliveryattempt', 'attempted_at',
                unique_to_index={'delivery_attempt_public_id_unique': 'delivery_attempt_public_id_idx'})],
        ),
    ]
