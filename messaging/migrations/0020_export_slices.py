import django.contrib.postgres.fields
import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    """Exports written in slices (messaging.exports): the file becomes a list of parts, the run keeps a checkpoint,
    and a sweep finds exports whose task was lost. A file written before is its one part."""

    dependencies = [
        ('messaging', '0019_reports_partitioned'),
    ]

    operations = [
        migrations.AddField(
            model_name='export',
            name='file_parts',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=300), blank=True, default=list, size=None),
        ),
        migrations.RunSQL(
            "UPDATE messaging_export SET file_parts = ARRAY[file_name] WHERE file_name <> ''",
            "UPDATE messaging_export SET file_name = coalesce(file_parts[1], '')",
        ),
        migrations.RemoveIndex(
            model_name='export',
            name='export_expiry_idx',
        ),
        migrations.RemoveField(
            model_name='export',
            name='file_name',
        ),
        migrations.AddIndex(
            model_name='export',
            index=models.Index(condition=models.Q(('file_deleted_at__isnull', True), models.Q(('file_parts', []), _negated=True)), fields=['expires_at'], name='export_expiry_idx'),
        ),
        migrations.AddField(
            model_name='export',
            name='last_key',
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name='export',
            name='row_total',
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name='export',
            name='moved_at',
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now),
        ),
        migrations.AddIndex(
            model_name='export',
            index=models.Index(condition=models.Q(('status__in', ['pending', 'running'])), fields=['moved_at'], name='export_unfinished_idx'),
        ),
    ]
