import django.db.models.deletion
from django.db import migrations, models

from mittis.partitions import partition_by_month


class Migration(migrations.Migration):
    """Events partitioned by month of `created_at`, and their deliveries with them (by their event's `created_at`,
    a new column): an event, its deliveries and its month are dropped together (issue 28, mittis/partitions.py).
    Their unique constraints become indexes, and the foreign keys to them go: see mittis/partitions.py."""

    dependencies = [
        ('webhooks', '0009_attempts_partitioned'),
    ]

    operations = [
        migrations.AddField(model_name='delivery', name='event_created_at', field=models.DateTimeField(null=True)),
        migrations.RunSQL("UPDATE webhooks_delivery d SET event_created_at = e.created_at FROM webhooks_event e "
                          "WHERE e.id = d.event_id", migrations.RunSQL.noop),
        migrations.AlterField(model_name='delivery', name='event_created_at', field=models.DateTimeField()),
        migrations.AlterField(
            model_name='delivery', name='event',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name='deliveries', to='webhooks.event'),
        ),
        migrations.AlterField(
            model_name='deliveryattempt', name='delivery',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name='attempt_rows', to='webhooks.delivery'),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name='event', name='event_public_id_unique'),
                migrations.RemoveConstraint(model_name='event', name='event_object_sequence_unique'),
                migrations.AddIndex(model_name='event', index=models.Index(
                    fields=['public_id'], name='event_public_id_idx')),
                migrations.AddIndex(model_name='event', index=models.Index(
                    fields=['object_id', 'sequence'], name='event_object_sequence_idx')),
            ],
            database_operations=[partition_by_month('webhooks', 'event', 'created_at', unique_to_index={
                'event_public_id_unique': 'event_public_id_idx',
                'event_object_sequence_unique': 'event_object_sequence_idx'})],
        ),
        partition_by_month('webhooks', 'delivery', 'event_created_at', unique_to_index={}),
    ]
