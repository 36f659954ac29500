"""Event payloads kept compressed (webhooks/compression.py). The column becomes `bytea`; the rows already written keep
their JSON as its UTF-8 bytes, which the stored form reads as uncompressed (its first byte is `{`): no row is
rewritten in Python, and they leave with their months. No way back: PostgreSQL cannot inflate what the app
compressed."""

from django.db import migrations

import webhooks.compression


class Migration(migrations.Migration):

    dependencies = [
        ("webhooks", "0010_events_deliveries_partitioned"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # Not `::bytea`, which reads backslashes as escapes: JSON's `\"` would not survive it.
            database_operations=[migrations.RunSQL(
                "ALTER TABLE webhooks_event ALTER COLUMN payload TYPE bytea USING convert_to(payload, 'UTF8')",
                elidable=False)],
            state_operations=[migrations.AlterField(
                model_name="event", name="payload", field=webhooks.compression.CompressedTextField())],
        ),
    ]
