"""The console's admins of models Mittis does not own, held to the role matrix (mittis/accounts/roles.py).

Users, groups and login lockouts are the superuser's alone, whatever permissions a group is given: whoever
may edit a user may make anyone (themselves too) a superuser, staff, or a member of any group. Beat's task
actions change tasks, so they need the change permission (beat offers them to anyone who can see the list).
"""

from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessLog
from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth.models import Group, User
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import PeriodicTask


class SuperuserOnly:
    """Only a superuser sees or touches these; the model admin's own limits still apply to them."""

    def has_module_permission(self, request):
        return request.user.is_superuser and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


class UserAdmin(SuperuserOnly, auth_admin.UserAdmin):
    pass


class GroupAdmin(SuperuserOnly, auth_admin.GroupAdmin):
    pass


class LoginRecordAdmin(SuperuserOnly):
    """A login record is what happened: read, or deleted (which lifts a lockout), never edited."""

    def has_change_permission(self, request, obj=None):
        return False


class AccessAttemptAdmin(LoginRecordAdmin, axes_admin.AccessAttemptAdmin):
    pass


class AccessLogAdmin(LoginRecordAdmin, axes_admin.AccessLogAdmin):
    pass


def _changes_tasks(action):
    def changing(self, request, queryset):
        return action(self, request, queryset)
    return admin.action(description=action.short_description, permissions=["change"])(changing)


class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin):
    enable_tasks = _changes_tasks(beat_admin.PeriodicTaskAdmin.enable_tasks)
    disable_tasks = _changes_tasks(beat_admin.PeriodicTaskAdmin.disable_tasks)
    toggle_tasks = _changes_tasks(beat_admin.PeriodicTaskAdmin.toggle_tasks)
    run_tasks = _changes_tasks(beat_admin.PeriodicTaskAdmin.run_tasks)


def register(site: admin.AdminSite) -> None:
    """Replace what the apps registered (auth, beat) and add axes' records (AXES_ENABLE_ADMIN is off)."""
    for model, model_admin in [(User, UserAdmin), (Group, GroupAdmin), (PeriodicTask, PeriodicTaskAdmin)]:
        site.unregister(model)
        site.register(model, model_admin)
    site.register(AccessAttempt, AccessAttemptAdmin)
    site.register(AccessLog, AccessLogAdmin)
