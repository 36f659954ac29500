"""The staff console's roles in one table: what each role may do on each model of the admin.

Everything else follows from it. The staff groups get exactly the permissions it names (apps.py, after every
migrate); the operations guide shows it (`python -m mittis.accounts.roles` prints the table that
docs/operations.md holds); tests/admin/test_roles.py logs in as each role and compares what every admin page
and action allows with it, for every model registered on the admin site. Pure data, so the guide can be
regenerated without Django.

A cell lists `view`, `add`, `change`, `delete` and the names of the admin actions the role is offered. The
superuser's column is what the admin allows anyone: a superuser holds every permission, and an append-only
ledger is append-only for everyone.
"""

NO_GROUP, SUPPORT, OPERATIONS, SUPERUSER = "no group", "support", "operations", "superuser"
ROLES = (NO_GROUP, SUPPORT, OPERATIONS, SUPERUSER)
GROUPS = (SUPPORT, OPERATIONS)  # the roles that are groups; staff without a group see nothing
OPERATIONS_ON_MODELS = ("view", "add", "change", "delete")

# What each role is for, as the guide says it.
PURPOSES = {
    NO_GROUP: "a staff user not yet given a role: sees nothing (no app on the index; every page 403)",
    SUPPORT: "answers customers: reads everything but users, groups and login records; cancels scheduled "
             "messages, redelivers events and retries deliveries; moves no money and changes no configuration",
    OPERATIONS: "runs the platform: support's reads and actions, plus accounts, API keys, prices, balances "
                "(ledger entries), endpoints, carriers, routes, senders, opt-outs, exports and beat's schedules",
    SUPERUSER: "the only role that edits users and groups (so the only one that makes staff, superusers or "
               "role changes) and reads or clears login lockouts",
}

_READ = "view"
_CONFIGURE = "view add change delete delete_selected"
_BEAT_TASKS = _CONFIGURE + " enable_tasks disable_tasks toggle_tasks run_tasks"


def _superuser_only(superuser: str) -> dict[str, str]:
    return {SUPERUSER: superuser}


def _everyone(support: str, operations: str, superuser: str | None = None) -> dict[str, str]:
    return {SUPPORT: support, OPERATIONS: operations, SUPERUSER: superuser or operations}


# model (app_label.model_name): {role: what it may do}. A role not named may do nothing.
CONSOLE = {
    "auth.group": _superuser_only("view add change delete delete_selected"),
    "auth.user": _superuser_only("view add change delete delete_selected"),
    "axes.accessattempt": _superuser_only("view delete delete_selected cleanup_expired_attempts"),
    "axes.accesslog": _superuser_only("view delete delete_selected"),
    "accounts.account": _everyone(_READ, "view add change"),  # deactivate, never delete: history is kept
    "accounts.apikey": _everyone(_READ, "view add change revoke_keys"),  # revoke, never delete
    "billing.price": _everyone(_READ, _CONFIGURE),  # only prices not yet in effect can be deleted
    "billing.balance": _everyone(_READ, _READ),  # moves only with ledger entries
    "billing.ledgerentry": _everyone(_READ, "view add"),  # append-only
    "webhooks.webhookendpoint": _everyone(
        _READ, "view change disable_endpoints enable_endpoints recover_last_day"),  # customers delete theirs
    "webhooks.event": _everyone("view redeliver", "view redeliver"),
    "webhooks.delivery": _everyone("view retry_now", "view retry_now"),
    "webhooks.deliveryattempt": _everyone(_READ, _READ),
    "messaging.message": _everyone("view cancel_scheduled", "view cancel_scheduled"),
    "messaging.carrierreport": _everyone(_READ, _READ),
    "messaging.carrierinbound": _everyone(_READ, _READ),  # as it came: unrouted ones are kept, never edited
    "messaging.sender": _everyone(_READ, _CONFIGURE),
    "messaging.carrier": _everyone(_READ, _CONFIGURE + " close_breaker disable_carriers enable_carriers"),
    "messaging.route": _everyone(_READ, _CONFIGURE),
    "messaging.optout": _everyone(_READ, "view delete delete_selected"),  # deleting one opts the phone back in
    "messaging.export": _everyone(_READ, "view add"),
    "django_celery_beat.periodictask": _everyone(_READ, _BEAT_TASKS),
    "django_celery_beat.clockedschedule": _everyone(_READ, _CONFIGURE),
    "django_celery_beat.crontabschedule": _everyone(_READ, _CONFIGURE),
    "django_celery_beat.intervalschedule": _everyone(_READ, _CONFIGURE),
    "django_celery_beat.solarschedule": _everyone(_READ, _CONFIGURE),
}

# Actions that need a permission of their own, beyond the model's view/add/change/delete.
ACTION_PERMISSIONS = {
    "cancel_scheduled": "messaging.cancel_message",
    "redeliver": "webhooks.redeliver_event",
    "retry_now": "webhooks.redeliver_event",
    "recover_last_day": "webhooks.recover_endpoint",
}

# Models edited only inline on another model's page: they share its permissions.
INLINE_MODELS = {"messaging.route": ("messaging.routecarrier",)}


def allowed(model: str, role: str) -> frozenset[str]:
    """What `role` may do on `model` (app_label.model_name): operations and action names."""
    return frozenset(CONSOLE.get(model, {}).get(role, "").split())


def group_permissions(role: str) -> set[tuple[str, str]]:
    """(app_label, codename) of every permission the group `role` holds: exactly what its column needs."""
    granted = set()
    for model in CONSOLE:
        can = allowed(model, role)
        for related in (model, *INLINE_MODELS.get(model, ())):
            app_label, model_name = related.split(".")
            granted |= {(app_label, f"{op}_{model_name}") for op in OPERATIONS_ON_MODELS if op in can}
        granted |= {tuple(ACTION_PERMISSIONS[action].split(".")) for action in can if action in ACTION_PERMISSIONS}
    return granted


def markdown_table() -> str:
    """The matrix as the operations guide shows it."""
    lines = ["| model | " + " | ".join(ROLES) + " |", "|---" * (len(ROLES) + 1) + "|"]
    for model in sorted(CONSOLE):
        cells = []
        for role in ROLES:
            can = allowed(model, role)
            words = [op for op in OPERATIONS_ON_MODELS if op in can]
            words += [f"`{action}`" for action in sorted(can - set(OPERATIONS_ON_MODELS))]
            cells.append(", ".join(words) or "–")
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
