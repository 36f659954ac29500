from django.db import migrations, models


class Migration(migrations.Migration):
    """Nullable, with no default: rows written before it (and by processes not yet upgraded, during a rolling
    deploy) read as NULL, meaning a plaintext answer about an unknown object."""

    dependencies = [
        ("api", "0004_mittis_refuse"),
    ]

    operations = [
        migrations.AddField(
            model_name="idempotencyrecord",
            name="object_id",
            field=models.CharField(max_length=100, null=True, blank=True),
        ),
    ]
