from django.db import migrations, models

from mittis.partitions import partition_by_month


class Migration(migrations.Migration):
    """Send attempts partitioned by month of `started_at`: old months are dropped whole (mittis/partitions.py). The
    unique (message, number) becomes an index: the numbers' single writer is in SendAttempt's Meta."""

    dependencies = [
        ('messaging', '0021_retention_mark'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name='sendattempt', name='attempt_number_unique'),
                migrations.AddIndex(model_name='sendattempt', index=models.Index(
                    fields=['message', 'number'], name='attempt_number_idx')),
            ],
            database_operations=[partition_by_month(
                'messaging', 'sendattempt', 'started_at',
                unique_to_index={'attempt_number_unique': 'attempt_number_idx'})],
        ),
    ]
