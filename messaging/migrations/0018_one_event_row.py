from django.db import migrations


class Migration(migrations.Migration):
    """One event, one row (issue 28): `messaging_messageevent` kept each event a second time beside
    `webhooks_event`, under the same `evt_` id, with the message's JSON stored twice. Its two columns that the
    payload does not hold, the status and what the carrier said, move onto the event; then it goes."""

    dependencies = [
        ('messaging', '0017_sweep_indexes'),
        ('webhooks', '0008_event_status'),
    ]

    operations = [
        migrations.RunSQL(
            "UPDATE webhooks_event e SET status = m.status, carrier_status = m.carrier_status "
            "FROM messaging_messageevent m WHERE m.public_id = e.public_id",
            migrations.RunSQL.noop),
        migrations.DeleteModel(
            name='MessageEvent',
        ),
    ]
