from django.db import migrations, models

import mittis.versions


class Migration(migrations.Migration):
    """A database default, the first version: rows written before it (and by processes not yet upgraded, during a
    rolling deploy) hold answers rendered in the only version there was."""

    dependencies = [
        ("api", "0005_idempotency_record_object_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="idempotencyrecord",
            name="api_version",
            field=models.CharField(db_default="2026-12-07", default=mittis.versions.current, max_length=10),
        ),
    ]
