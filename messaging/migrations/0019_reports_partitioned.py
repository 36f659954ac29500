from django.db import migrations

from mittis.partitions import partition_by_month


class Migration(migrations.Migration):
    """Carrier reports partitioned by month of `received_at` (issue 28): old months are dropped whole
    (mittis/partitions.py)."""

    dependencies = [
        ('messaging', '0018_one_event_row'),
    ]

    operations = [
        partition_by_month('messaging', 'carrierreport', 'received_at', unique_to_index={}),
    ]
