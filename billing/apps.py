from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from billing.models import Price

        post_save.connect(_prices_changed, sender=Price, dispatch_uid="prices-changed")
        post_delete.connect(_prices_changed, sender=Price, dispatch_uid="prices-deleted")


def _prices_changed(sender, **kwargs):
    from billing.selectors import prices_changed

    prices_changed()
