from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "mittis.accounts"
    label = "accounts"
    verbose_name = "Accounts and API keys"

    def ready(self):
        post_migrate.connect(_operations_may_do_everything, sender=self)


def _operations_may_do_everything(sender, **kwargs):
    """Keep the `operations` staff group on every permission, including those of models added later."""
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.filter(name="operations").first()
    if group is not None:
        group.permissions.set(Permission.objects.all())
