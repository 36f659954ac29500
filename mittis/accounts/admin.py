from django import forms
from django.contrib import admin, messages

from mittis import versions
from mittis.accounts.models import Account, ApiKey
from mittis.accounts.services import api_key_create, api_key_revoke


class RecordAdmin(admin.ModelAdmin):
    """A record kept as it came (a carrier's report or inbound message, an event, a webhook attempt): the roles
    that may view it read its fields (`readonly_fields`, else all of them); nobody adds, edits or deletes one."""

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields or [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ["public_id", "prefix", "name", "livemode", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # keys are created on their own page, where the secret is shown once


def _version_choices() -> list[tuple[str, str]]:
    """Every known version, newest first; read when a form is made, so a new version is offered at once."""
    newest = versions.current()
    return [(v, f"{v} (current)" if v == newest else v) for v in reversed(versions.known())]


class AccountForm(forms.ModelForm):
    api_version = forms.ChoiceField(
        choices=_version_choices, label="API version",
        help_text="Requests without a Mittis-Version header, and status_callback requests, are answered in it. "
                  "Its webhook endpoints keep their own. The versions and their changes: /docs/changelog.")


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    form = AccountForm
    list_display = ["public_id", "name", "is_active", "api_version", "created_at"]
    list_filter = ["is_active", "api_version"]  # who is still on an old version
    search_fields = ["=public_id", "name"]
    readonly_fields = ["public_id", "created_at"]
    fieldsets = [
        (None, {"fields": ["public_id", "name", "is_active", "help_reply", "retention_days", "created_at"]}),
        ("Rate limit", {"fields": ["rate_limit", "rate_limit_window"],
                        "description": "Per API key. Blank fields take the defaults from settings."}),
        ("API version", {"fields": ["api_version"]}),
    ]
    inlines = [ApiKeyInline]

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: an account's messages and ledger are kept


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "account", "livemode", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["livemode"]
    list_select_related = ["account"]
    search_fields = ["=public_id", "prefix", "=account__public_id", "account__name"]
    autocomplete_fields = ["account"]
    actions = ["revoke_keys"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["account", "livemode", "name"]
        return ["public_id", "account", "livemode", "name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["public_id", "account", "livemode", "prefix", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        created = api_key_create(account=obj.account, livemode=obj.livemode, name=obj.name)
        # The admin goes on with `obj` (log entry, redirect): make it the row the service created.
        obj.pk = created.api_key.pk
        obj.refresh_from_db()
        messages.warning(request, f"The new key's secret, shown only this once: {created.secret}")

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: a revoked key keeps its history

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
            self.log_change(request, api_key, "Revoked from the staff console.")
        self.message_user(request, "Revoked. Requests with these keys now get 401 invalid_api_key.")
