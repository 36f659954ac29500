from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "mittis.accounts"
    label = "accounts"
    verbose_name = "Accounts and API keys"
