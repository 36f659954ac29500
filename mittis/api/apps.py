from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "mittis.api"
    label = "api"
    verbose_name = "API plumbing"

    def ready(self):
        from mittis.api import schema  # noqa: F401  registers the OpenAPI auth extension
        from django.db.backends.signals import connection_created

        from mittis.db import arrays_in_binary, cache_statement_conversion

        cache_statement_conversion()
        connection_created.connect(arrays_in_binary, dispatch_uid="mittis.db.arrays_in_binary")
