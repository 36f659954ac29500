from django.db import migrations, models


class Migration(migrations.Migration):
    """The event is the one row of an event (messaging's copy goes in messaging 0018): the status it reports and
    the carrier's words join it, and (object_id, sequence) is unique here as it was there."""

    dependencies = [
        ('accounts', '0007_unique_by_constraints'),
        ('webhooks', '0007_unique_by_constraints'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='event',
            name='event_object_idx',
        ),
        migrations.AddField(
            model_name='event',
            name='carrier_status',
            field=models.CharField(blank=True, db_default="", max_length=64),
        ),
        migrations.AddField(
            model_name='event',
            name='status',
            field=models.CharField(blank=True, db_default="", max_length=12),
        ),
        migrations.AddConstraint(
            model_name='event',
            constraint=models.UniqueConstraint(fields=('object_id', 'sequence'), name='event_object_sequence_unique'),
        ),
    ]
