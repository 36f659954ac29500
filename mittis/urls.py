from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularRedocView

from mittis.api import docs

urlpatterns = [
    path("v1/", include("messaging.urls")),
    path("v1/", include("billing.urls")),
    path("v1/", include("webhooks.urls")),
    path("carriers/", include("messaging.carrier_urls")),
    path("openapi.json", docs.OpenApiView.as_view(), name="openapi"),
    path("docs", SpectacularRedocView.as_view(url_name="openapi", template_name="docs/redoc.html"), name="docs"),
    path("docs/redoc/bundles/redoc.standalone.js", docs.redoc_bundle, name="docs-redoc"),
    path("docs/errors", docs.error_catalogue, name="docs-errors"),
    path("docs/operations", docs.operations_guide, name="docs-operations"),
    path("docs/changelog", docs.changelog, name="docs-changelog"),
    path("docs/versioning", docs.versioning_policy, name="docs-versioning"),
    path("healthz", docs.health, name="health"),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/docs", permanent=False)),
]

if settings.MITTIS_BENCH_REFERENCES:
    urlpatterns.append(path("bench/", include("mittis.ops.bench_views")))

handler400 = "mittis.api.errors.bad_request_view"
handler403 = "mittis.api.errors.permission_denied_view"
handler404 = "mittis.api.errors.not_found_view"
handler500 = "mittis.api.errors.server_error_view"
