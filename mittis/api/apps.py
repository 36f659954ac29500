from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "mittis.api"
    label = "api"
    verbose_name = "API plumbing"

    def ready(self):
        from mittis.api import schema  # noqa: F401  registers the OpenAPI auth extension
        from django.urls import register_converter

        from mittis.api.converters import PublicIdConverter

        register_converter(PublicIdConverter, "public_id")  # before any URLconf is read, which is on first use

        from django.conf import settings

        from mittis.api.ratelimit import trusted_proxies

        trusted_proxies(tuple(settings.MITTIS_TRUSTED_PROXIES))  # a wrong network fails the start, not each request

        from django.db.backends.signals import connection_created

        from mittis.db import cache_statement_conversion, postgresql_tuned

        cache_statement_conversion()
        connection_created.connect(postgresql_tuned, dispatch_uid="mittis.db.postgresql_tuned")

        from mittis.api.idempotency import redact_stored_answers
        from mittis.signals import object_redacted

        object_redacted.connect(redact_stored_answers, dispatch_uid="mittis.api.idempotency.redact_stored_answers")
