import django.db.models.deletion
from django.db import migrations, models

import mittis.ids
from mittis.migration_ops import unique_by_constraint


class Migration(migrations.Migration):
    """Unique text columns without their LIKE indexes (mittis/ids.py), and no foreign-key index where another index
    leads with its column. All of them small tables but messages and events, whose LIKE indexes 0010 dropped."""

    dependencies = [
        ('messaging', '0015_message_status_times'),
    ]

    operations = [
        unique_by_constraint('messaging', 'message', 'public_id',
                             models.CharField(default=mittis.ids._msg, editable=False, max_length=40),
                             'message_public_id_unique'),
        unique_by_constraint('messaging', 'messageevent', 'public_id',
                             models.CharField(default=mittis.ids._evt, editable=False, max_length=40),
                             'message_event_public_id_unique'),
        unique_by_constraint('messaging', 'optout', 'public_id',
                             models.CharField(default=mittis.ids._opt, editable=False, max_length=40),
                             'opt_out_public_id_unique'),
        unique_by_constraint('messaging', 'carrier', 'name',
                             models.SlugField(help_text='Recorded on every message it sends.', max_length=32),
                             'carrier_name_unique'),
        unique_by_constraint('messaging', 'export', 'public_id',
                             models.CharField(default=mittis.ids._exp, editable=False, max_length=40),
                             'export_public_id_unique'),
        migrations.AlterField(
            model_name='export',
            name='account',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='exports', to='accounts.account'),
        ),
        migrations.AlterField(
            model_name='optout',
            name='account',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='opt_outs', to='accounts.account'),
        ),
        migrations.AlterField(
            model_name='routecarrier',
            name='route',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='entries', to='messaging.route'),
        ),
        migrations.AlterField(
            model_name='sender',
            name='account',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='senders', to='accounts.account'),
        ),
        migrations.AlterField(
            model_name='smppsubmission',
            name='carrier',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='messaging.carrier'),
        ),
    ]
