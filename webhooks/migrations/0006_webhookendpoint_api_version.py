from django.db import migrations, models

import mittis.versions


class Migration(migrations.Migration):
    """Every endpoint that exists when versions begin, and any a process not yet upgraded creates during a rolling
    deploy, gets the first version (the column's database default): the shape its receiver was written against."""

    dependencies = [
        ("webhooks", "0005_delivery_endpoint_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="api_version",
            field=models.CharField(db_default="2026-12-07", max_length=10, validators=[mittis.versions.validate]),
        ),
    ]
