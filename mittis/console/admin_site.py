from django.contrib import admin


class MittisAdminSite(admin.AdminSite):
    """The staff console: the Django admin, with a dashboard on its front page."""

    site_header = "Mittis staff console"
    site_title = "Mittis staff"
    index_title = "Dashboard"

    def index(self, request, extra_context=None):
        from mittis.console.dashboard import dashboard

        return super().index(request, {**(extra_context or {}), "dashboard": dashboard()})
