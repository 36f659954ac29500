from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """An index for each beat sweep holding only the rows it looks for (see Message.Meta). Built CONCURRENTLY: a
    plain CREATE INDEX would stop every send for as long as it reads the messages table. The claims' index is built
    under its new name before the old one goes, so they are never without one."""

    atomic = False

    dependencies = [
        ('messaging', '0016_unique_by_constraints'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='message',
            index=models.Index(condition=models.Q(('status__in', ['queued', 'sending'])), fields=['status', 'updated_at'], name='message_waiting_idx'),
        ),
        RemoveIndexConcurrently(
            model_name='message',
            name='message_status_age_idx',
        ),
        AddIndexConcurrently(
            model_name='message',
            index=models.Index(condition=models.Q(('status', 'sent')), fields=['sent_at'], name='message_sent_idx'),
        ),
        AddIndexConcurrently(
            model_name='message',
            index=models.Index(condition=models.Q(('status__in', ['scheduled', 'queued'])), fields=['expires_at'], name='message_expiry_idx'),
        ),
        AddIndexConcurrently(
            model_name='message',
            index=models.Index(condition=models.Q(('redacted_at__isnull', True)), fields=['account', 'created_at'], name='message_retention_idx'),
        ),
        AddIndexConcurrently(
            model_name='export',
            index=models.Index(condition=models.Q(('file_deleted_at__isnull', True), models.Q(('file_name', ''), _negated=True)), fields=['expires_at'], name='export_expiry_idx'),
        ),
        AddIndexConcurrently(
            model_name='export',
            index=models.Index(condition=models.Q(('file_deleted_at__isnull', True), ('redactions_pending__gt', 0), ('status', 'succeeded')), fields=['id'], name='export_scrub_idx'),
        ),
    ]
