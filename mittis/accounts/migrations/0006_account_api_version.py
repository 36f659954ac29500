# Every account that exists when versions begin is pinned to the first one (the column's database default), and so
# is any account written by a process that predates the column during a rolling deploy: their clients were written
# against that shape. Accounts created by the ORM get the current version.

from django.db import migrations, models

import mittis.versions


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_staff_groups'),
    ]

    operations = [
        migrations.AddField(
            model_name='account',
            name='api_version',
            field=models.CharField(db_default='2026-12-07', default=mittis.versions.current, help_text='The API version of requests without a Mittis-Version header, and of status_callback requests. Its webhook endpoints keep their own.', max_length=10, validators=[mittis.versions.validate]),
        ),
    ]
