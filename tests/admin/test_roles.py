"""The staff roles are one table (mittis/accounts/roles.py): each role, logged in, may do on every model of the
admin site exactly what the table says; the groups hold exactly its permissions; the guide shows it."""

from datetime import timedelta
from decimal import Decimal

from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule,
)
import pytest

from billing.models import Balance, LedgerEntry, Price
from billing.services import balance_top_up
from messaging.models import (
    Carrier, CarrierInbound, CarrierReport, Export, Message, OptOut, Route, RouteCarrier, Sender,
)
from messaging.services import message_create, message_send
from mittis.accounts import roles
from mittis.accounts.models import ApiKey
from mittis.accounts.services import api_key_create
from tests.conftest import SEED
from webhooks.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from webhooks.services import delivery_attempt, endpoint_create

MODEL_OPERATIONS = set(roles.OPERATIONS_ON_MODELS)


def label(model) -> str:
    return model._meta.label_lower


def staff(role: str) -> User:
    if role == roles.SUPERUSER:
        return User.objects.create_superuser("superuser-person", password="unused-in-these-tests")
    user = User.objects.create_user(f"{role.replace(' ', '-')}-person", is_staff=True)
    if role in roles.GROUPS:
        user.groups.add(Group.objects.get(name=role))
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def one_of_each(account, settings):
    """A row of every model registered on the admin site (a new model must add its own here)."""
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = ["127.0.0.1"]
    settings.MITTIS_WEBHOOK_ALLOW_HTTP = True
    now = timezone.now()
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    endpoint_create(account=account, livemode=True, url="http://127.0.0.1:9/hooks", enabled_events=["*"])
    message = message_create(account=account, livemode=True, sender=SEED["from"], to=SEED["to"], body="hi")
    message_send(message_id=message.pk)
    delivery_attempt(delivery_id=Delivery.objects.first().pk)  # port 9 refuses: a failed attempt
    api_key_create(account=account, livemode=False)
    carrier = Carrier.objects.create(name="smsc-1", kind="smpp")
    route = Route.objects.create(prefix="+44")
    RouteCarrier.objects.create(route=route, carrier=carrier)
    interval = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    rows = [
        Group.objects.get(name=roles.SUPPORT),
        User.objects.create_user("someone", is_staff=True),
        AccessAttempt.objects.create(username="someone", ip_address="192.0.2.1", user_agent="", get_data="",
                                     post_data="", http_accept="", path_info="/admin/login/", failures_since_start=1),
        AccessLog.objects.create(username="someone", ip_address="192.0.2.1", user_agent="", http_accept="",
                                 path_info="/admin/login/"),
        account, ApiKey.objects.first(),
        Price.objects.create(country="GB", unit_price=Decimal("0.04"), currency="USD",
                             effective_from=now + timedelta(days=30)),  # not yet in effect: deletable
        Balance.objects.first(), LedgerEntry.objects.first(),
        WebhookEndpoint.objects.first(), Event.objects.first(), Delivery.objects.first(),
        DeliveryAttempt.objects.first(),
        Sender.objects.first(), message, carrier, route,
        CarrierReport.objects.create(carrier="sandbox", carrier_message_id="c-1", status="delivered", raw={},
                                     message=message),
        CarrierInbound.objects.create(carrier="smsc-1", from_number=SEED["to"], to="+18005550100", body="STOP",
                                      raw={}),  # to a number no account has
        OptOut.objects.create(account=account, livemode=True, phone_number="+18045550100", sender=SEED["from"],
                              keyword="STOP"),
        Export.objects.create(account=account, livemode=True, type=Export.MESSAGES, format=Export.CSV,
                              start=now - timedelta(days=1), end=now),
        PeriodicTask.objects.create(name="a task", task="messaging.expire_overdue", interval=interval),
        interval, CrontabSchedule.objects.create(),
        SolarSchedule.objects.create(event="sunrise", latitude=Decimal("51.5"), longitude=Decimal("0")),
        ClockedSchedule.objects.create(clocked_time=now + timedelta(days=1)),
    ]
    found = {label(type(row)): row for row in rows}
    assert set(found) == {label(model) for model in admin.site._registry}, "a row for every registered model"
    return found


def observed(client: Client, row) -> frozenset[str]:
    """What the admin's pages offer this client on `row`'s model: view, add, change, delete, action names."""
    info = row._meta.app_label, row._meta.model_name
    pages = {"list": client.get(reverse("admin:%s_%s_changelist" % info)),
             "page": client.get(reverse("admin:%s_%s_change" % info, args=[row.pk])),
             "history": client.get(reverse("admin:%s_%s_history" % info, args=[row.pk])),
             "add": client.get(reverse("admin:%s_%s_add" % info)),
             "delete": client.get(reverse("admin:%s_%s_delete" % info, args=[row.pk]))}
    status = {name: response.status_code for name, response in pages.items()}
    assert set(status.values()) <= {200, 403}, status
    can = set()
    reading = {status[name] for name in ("list", "page", "history")}
    if reading == {200}:
        can.add("view")
    elif 200 in reading:  # some pages of the model but not all: shown as a mismatch
        can.add("view ({list}, {page}, {history})".format(**status))
    if status["page"] == 200 and 'name="_save"' in pages["page"].content.decode():
        can.add("change")
    if status["add"] == 200:
        can.add("add")
    if status["delete"] == 200:
        can.add("delete")
    if status["list"] == 200 and pages["list"].context["action_form"] is not None:
        can |= {name for name, _ in pages["list"].context["action_form"].fields["action"].choices if name}
    return frozenset(can)


@pytest.mark.parametrize("role", roles.ROLES)
def test_each_role_may_do_on_every_model_exactly_what_the_matrix_says(role, one_of_each):
    client = client_for(staff(role))

    found = {model: observed(client, row) for model, row in one_of_each.items()}

    assert found == {model: roles.allowed(model, role) for model in one_of_each}


@pytest.mark.parametrize("role", roles.ROLES)
def test_the_index_shows_a_role_only_the_apps_it_may_see(role, db):
    response = client_for(staff(role)).get(reverse("admin:index"))

    assert response.status_code == 200
    shown = {app["app_label"] for app in response.context["app_list"]}
    assert shown == {model.split(".")[0] for model in roles.CONSOLE if "view" in roles.allowed(model, role)}
    assert ('id="dashboard"' in response.content.decode()) is (role != roles.NO_GROUP)


def test_the_matrix_names_every_registered_model_and_nothing_else():
    assert set(roles.CONSOLE) == {label(model) for model in admin.site._registry}


@pytest.mark.parametrize("role", roles.GROUPS)
def test_each_group_holds_exactly_the_permissions_its_column_needs(role, db):
    held = {(p.content_type.app_label, p.codename)
            for p in Group.objects.get(name=role).permissions.select_related("content_type")}

    assert held == roles.group_permissions(role)
    assert not any(app == "auth" for app, _ in held)


def test_a_permission_taken_out_of_the_matrix_leaves_the_group_at_the_next_migrate(db):
    """The groups follow the matrix after every migrate (post_migrate), so an upgrade needs no data migration."""
    from django.core.management import call_command

    support = Group.objects.get(name=roles.SUPPORT)
    support.permissions.add(Permission.objects.get(codename="change_user"))

    call_command("migrate", verbosity=0)

    assert not support.permissions.filter(codename="change_user").exists()


def test_a_permission_made_by_a_migrate_is_in_the_groups_after_it(db):
    """A new model's permissions are made on migrate's last signals, which the groups must not miss."""
    from django.core.management import call_command

    Permission.objects.filter(codename__in=["view_export", "add_export"]).delete()  # messaging: the last app

    call_command("migrate", verbosity=0)

    assert set(Group.objects.get(name=roles.OPERATIONS).permissions.filter(
        codename__endswith="_export").values_list("codename", flat=True)) == {"view_export", "add_export"}


def test_the_operations_guide_shows_the_matrix():
    guide = (settings.BASE_DIR / "docs" / "operations.md").read_text()

    assert roles.markdown_table() in guide, "paste `python -m mittis.accounts.roles` into docs/operations.md"


# Users and groups: only superusers, whatever permissions a group holds.

def user_form(user: User, **changes) -> dict:
    return {"username": user.username, "is_active": "on", "is_staff": "on" if user.is_staff else "",
            "groups": [g.pk for g in user.groups.all()], "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
            **changes}


def test_operations_cannot_make_itself_a_superuser(db):
    person = staff(roles.OPERATIONS)
    client = client_for(person)

    response = client.post(reverse("admin:auth_user_change", args=[person.pk]), user_form(person, is_superuser="on"))

    person.refresh_from_db()
    assert response.status_code == 403 and not person.is_superuser


@pytest.mark.parametrize("field, value", [("is_superuser", "on"), ("is_staff", "on"), ("groups", "operations")])
def test_a_staff_user_given_every_user_permission_still_cannot_change_anyone(db, field, value):
    person = staff(roles.SUPPORT)
    person.user_permissions.set(Permission.objects.filter(content_type__app_label="auth"))
    other = User.objects.create_user("other-person")
    client = client_for(person)
    if field == "groups":
        value = [Group.objects.get(name=value).pk]

    for target in (person, other):
        response = client.post(reverse("admin:auth_user_change", args=[target.pk]), user_form(target, **{field: value}))
        assert response.status_code == 403
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert client.get(reverse("admin:auth_group_add")).status_code == 403
    person.refresh_from_db(), other.refresh_from_db()
    assert [(u.is_superuser, u.is_staff, list(u.groups.values_list("name", flat=True))) for u in (person, other)] == [
        (False, True, [roles.SUPPORT]), (False, False, [])]


def test_a_superuser_gives_a_staff_user_a_role(db):
    other = User.objects.create_user("new-colleague")
    client = client_for(staff(roles.SUPERUSER))

    response = client.post(reverse("admin:auth_user_change", args=[other.pk]), user_form(
        other, is_staff="on", groups=[Group.objects.get(name=roles.SUPPORT).pk]))

    assert response.status_code == 302
    other.refresh_from_db()
    assert other.is_staff and list(other.groups.values_list("name", flat=True)) == [roles.SUPPORT]
    assert client_for(other).get(reverse("admin:messaging_message_changelist")).status_code == 200
