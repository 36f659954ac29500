from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "mittis.api"
    label = "api"
    verbose_name = "API plumbing"

    def ready(self):
        from mittis.api import schema  # noqa: F401  registers the OpenAPI auth extension
        from mittis.db import cache_statement_conversion

        cache_statement_conversion()
