from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "mittis.ops"
    label = "ops"
    verbose_name = "Operations commands"
