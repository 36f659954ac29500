from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "mittis.accounts"
    label = "accounts"
    verbose_name = "Accounts and API keys"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from mittis.accounts.models import Account, ApiKey

        post_migrate.connect(_operations_may_do_everything, sender=self)
        for model in (Account, ApiKey):
            post_save.connect(_forget_cached_keys, sender=model, dispatch_uid=f"forget-keys-{model.__name__}")
            post_delete.connect(_forget_cached_keys, sender=model, dispatch_uid=f"forget-keys-del-{model.__name__}")


def _forget_cached_keys(sender, **kwargs):
    from mittis.accounts.selectors import api_keys_changed

    api_keys_changed()


def _operations_may_do_everything(sender, **kwargs):
    """Keep the `operations` staff group on every permission, including those of models added later."""
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.filter(name="operations").first()
    if group is not None:
        group.permissions.set(Permission.objects.all())
