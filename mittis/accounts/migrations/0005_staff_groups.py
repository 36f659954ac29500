"""The staff console's two roles. `support` reads everything and may cancel scheduled messages and
redeliver events; `operations` may do everything. Neither group is given a secret to read: secrets are
never shown, and only `operations` moves money (ledger entries, prices)."""

from django.db import migrations

SUPPORT_ACTIONS = [("messaging", "cancel_message"), ("webhooks", "redeliver_event")]


def create_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    support, _ = Group.objects.get_or_create(name="support")
    support.permissions.set(
        list(Permission.objects.filter(codename__startswith="view_"))
        + [Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in SUPPORT_ACTIONS])
    operations, _ = Group.objects.get_or_create(name="operations")
    operations.permissions.set(Permission.objects.all())


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["support", "operations"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_account_retention_days"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("messaging", "0008_alter_message_options_message_message_from_idx_and_more"),
        ("webhooks", "0002_alter_event_options_alter_webhookendpoint_options_and_more"),
        ("billing", "0002_seed_default_price"),
        ("api", "0001_idempotency_record"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
