from django.contrib import admin

from mittis.api.ratelimit import client_address


class MittisAdminSite(admin.AdminSite):
    """The staff console: the Django admin, with a dashboard on its front page."""

    site_header = "Mittis staff console"
    site_title = "Mittis staff"
    index_title = "Dashboard"

    def index(self, request, extra_context=None):
        from mittis.console.dashboard import dashboard

        # The dashboard is made of messages, carrier attempts, webhook attempts and exports: for those who
        # may read messages (not a staff user without a role).
        shown = dashboard() if request.user.has_perm("messaging.view_message") else None
        return super().index(request, {**(extra_context or {}), "dashboard": shown})


def login_address(request) -> str | None:
    """Where a login comes from, for its lockout (AXES_CLIENT_IP_CALLABLE): the address the rate limiter counts
    (behind MITTIS_TRUSTED_PROXIES, the client's, not the load balancer's); None when the request has none."""
    address = client_address(request)
    return None if address == "unknown" else address


def locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): the console's own page, 429, and
    when to come back."""
    from django.conf import settings
    from django.shortcuts import render

    cool_off = settings.AXES_COOLOFF_TIME
    response = render(request, "admin/locked_out.html", {
        **admin.site.each_context(request), "title": "Too many failed logins",
        "failure_limit": settings.AXES_FAILURE_LIMIT, "cool_off_minutes": round(cool_off.total_seconds() / 60),
    }, status=429)
    response["Retry-After"] = str(round(cool_off.total_seconds()))
    return response
