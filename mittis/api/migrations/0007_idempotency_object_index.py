from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """A redaction reaches the stored answers of its object through this index (`redact_stored_answers`). Built
    CONCURRENTLY: keyed POSTs never wait for it."""

    atomic = False

    dependencies = [
        ('api', '0006_idempotency_record_api_version'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='idempotencyrecord',
            index=models.Index(fields=['object_id'], name='idempotency_object_idx'),
        ),
    ]
