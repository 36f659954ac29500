from django.contrib.admin.apps import AdminConfig


class MittisAdminConfig(AdminConfig):
    default_site = "mittis.console.admin_site.MittisAdminSite"
