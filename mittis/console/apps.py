from django.contrib.admin.apps import AdminConfig


class MittisAdminConfig(AdminConfig):
    default_site = "mittis.console.admin_site.MittisAdminSite"

    def ready(self):
        super().ready()  # every app's admin module is imported: their registrations are made
        from django.contrib import admin

        from mittis.console import third_party

        third_party.register(admin.site)
