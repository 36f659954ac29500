from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "mittis.accounts"
    label = "accounts"
    verbose_name = "Accounts and API keys"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from mittis.accounts import checks  # noqa: F401 (registers the deploy checks)
        from mittis.accounts.models import Account, ApiKey

        # For every app's post_migrate: the groups then hold every app's permissions, whatever order the apps
        # migrate (or flush) in.
        post_migrate.connect(_staff_groups, dispatch_uid="staff-groups")
        for model in (Account, ApiKey):
            post_save.connect(_forget_cached_keys, sender=model, dispatch_uid=f"forget-keys-{model.__name__}")
            post_delete.connect(_forget_cached_keys, sender=model, dispatch_uid=f"forget-keys-del-{model.__name__}")


def _forget_cached_keys(sender, **kwargs):
    from mittis.accounts.selectors import api_keys_changed

    api_keys_changed()


def _staff_groups(sender, **kwargs):
    """Give each staff group exactly the permissions its column of the role matrix (roles.py) needs, after
    every migrate or flush: a permission taken out of the matrix is taken from the group on the next deploy."""
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    from mittis.accounts import roles

    # Auth makes this app's permissions on this same signal, but after us (accounts is installed before auth).
    create_permissions(**kwargs)
    permissions = {(p.content_type.app_label, p.codename): p for p in Permission.objects.select_related("content_type")}
    for role in roles.GROUPS:
        group, _ = Group.objects.get_or_create(name=role)
        # An app that has not migrated yet has no permissions: a later post_migrate adds them.
        group.permissions.set([permissions[key] for key in roles.group_permissions(role) if key in permissions])
