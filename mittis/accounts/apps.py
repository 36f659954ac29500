from django.apps import AppConfig
from django.db.models import Q
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "mittis.accounts"
    label = "accounts"
    verbose_name = "Accounts and API keys"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from mittis.accounts.models import Account, ApiKey

        # For every app's post_migrate, after auth has made that app's permissions: the groups then
        # hold every app's, whatever order the apps migrate (or flush) in.
        post_migrate.connect(_staff_groups, dispatch_uid="staff-groups")
        for model in (Account, ApiKey):
            post_save.connect(_forget_cached_keys, sender=model, dispatch_uid=f"forget-keys-{model.__name__}")
            post_delete.connect(_forget_cached_keys, sender=model, dispatch_uid=f"forget-keys-del-{model.__name__}")


def _forget_cached_keys(sender, **kwargs):
    from mittis.accounts.selectors import api_keys_changed

    api_keys_changed()


def _staff_groups(sender, **kwargs):
    """Keep the staff groups as the 0005 migration made them, after every migrate or flush: `operations`
    on every permission (of models added later too), `support` reading everything, cancelling and
    redelivering."""
    from django.contrib.auth.models import Group, Permission

    support, _ = Group.objects.get_or_create(name="support")
    support.permissions.set(Permission.objects.filter(
        Q(codename__startswith="view_") | Q(content_type__app_label="messaging", codename="cancel_message")
        | Q(content_type__app_label="webhooks", codename="redeliver_event")))
    operations, _ = Group.objects.get_or_create(name="operations")
    operations.permissions.set(Permission.objects.all())
