import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Where the nightly redaction past retention has got in each account (messaging.models.RetentionMark). An
    account without a mark starts from its creation; one whose messages not yet redacted go back further (written
    around the API) gets a mark at the oldest of them."""

    dependencies = [
        ('accounts', '0007_unique_by_constraints'),
        ('messaging', '0020_export_slices'),
    ]

    operations = [
        migrations.CreateModel(
            name='RetentionMark',
            fields=[
                ('account', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='retention_mark', serialize=False, to='accounts.account')),
                ('redacted_before', models.DateTimeField()),
            ],
        ),
        migrations.RunSQL(
            """
            INSERT INTO messaging_retentionmark (account_id, redacted_before)
            SELECT a.id, older.created_at
            FROM accounts_account a
            CROSS JOIN LATERAL (SELECT min(m.created_at) AS created_at FROM messaging_message m
                                WHERE m.account_id = a.id AND m.redacted_at IS NULL
                                  AND m.created_at < a.created_at) older
            WHERE older.created_at IS NOT NULL
            """,
            migrations.RunSQL.noop,
        ),
    ]
