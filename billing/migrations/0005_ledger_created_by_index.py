import django.db.models.deletion
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """The index of an entry's staff member holds only the entries a person made, not every message's charge and
    refund (NULL there). The partial index is built CONCURRENTLY before the full one goes: charges never wait."""

    atomic = False

    dependencies = [
        ('billing', '0004_unique_by_constraints'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='ledgerentry',
            index=models.Index(condition=models.Q(('created_by__isnull', False)), fields=['created_by'], name='ledger_created_by_idx'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='created_by',
            field=models.ForeignKey(blank=True, db_index=False, help_text='The staff member, for top-ups and adjustments.', null=True, on_delete=django.db.models.deletion.PROTECT, to=settings.AUTH_USER_MODEL),
        ),
    ]
