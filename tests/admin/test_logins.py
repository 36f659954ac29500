"""Staff logins: locked out after repeated failures (django-axes) per user name and address, without touching the
API; passwords held to the validators in every form that sets one, and in createsuperuser."""

from datetime import timedelta
import os
from unittest import mock

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
import pytest
import time_machine

from tests.factories import api_key_for

PASSWORD = "a long staff passphrase"
LIMIT, COOL_OFF = settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME


@pytest.fixture(autouse=True)
def fast_hashes(settings):
    """A login hashes its password (~0.3 s with the real hasher): these tests make dozens."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def colleague(db):
    return User.objects.create_user("colleague", password=PASSWORD, is_staff=True)


def log_in(username: str, password: str, address: str = "198.51.100.7"):
    return Client(REMOTE_ADDR=address).post(reverse("admin:login"), {"username": username, "password": password,
                                                                     "next": "/admin/"})


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def test_the_lockout_is_configured_per_user_name_and_address_with_a_cool_off():
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert (LIMIT, COOL_OFF, settings.AXES_RESET_ON_SUCCESS) == (5, timedelta(minutes=15), True)


def test_after_repeated_failures_even_the_right_password_is_refused_until_the_cool_off(colleague):
    with time_machine.travel("2026-12-01 09:00:00Z", tick=False) as clock:
        answers = [log_in("colleague", "wrong guess").status_code for _ in range(LIMIT)]
        assert answers == [200] * (LIMIT - 1) + [429]  # the form again, then the lockout page

        clock.shift(COOL_OFF - timedelta(seconds=1))
        with mock.patch.object(User, "check_password") as hashed:
            refused = log_in("colleague", PASSWORD)
        assert refused.status_code == 429 and "Too many failed logins" in refused.content.decode()
        assert refused["Retry-After"] == str(round(COOL_OFF.total_seconds()))
        assert not hashed.called  # refused before its password is hashed (each hash is ~0.3 s of CPU)

        clock.shift(COOL_OFF - timedelta(seconds=1))  # the refused attempt started the wait again
        assert log_in("colleague", PASSWORD).status_code == 429
        clock.shift(COOL_OFF + timedelta(seconds=1))
        assert logged_in(log_in("colleague", PASSWORD))


def test_failures_under_another_user_name_or_from_another_address_do_not_lock_a_user_out(colleague):
    for _ in range(LIMIT * 2):
        log_in("admin", "password")  # someone guessing other names from the same address
        log_in("colleague", "wrong guess", address="203.0.113.9")  # or this name from elsewhere

    assert logged_in(log_in("colleague", PASSWORD))
    assert log_in("colleague", PASSWORD, address="203.0.113.9").status_code == 429


def test_behind_a_trusted_load_balancer_a_lockout_is_the_clients_not_everyones(colleague, settings):
    settings.MITTIS_TRUSTED_PROXIES = ["10.0.0.0/8"]

    def through_the_balancer(client_address: str, password: str):
        return Client(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=client_address).post(
            reverse("admin:login"), {"username": "colleague", "password": password, "next": "/admin/"})

    for _ in range(LIMIT):
        through_the_balancer("203.0.113.9", "wrong guess")  # someone else guessing, through the same balancer

    assert through_the_balancer("203.0.113.9", PASSWORD).status_code == 429
    assert logged_in(through_the_balancer("198.51.100.7", PASSWORD))  # the colleague, from their own address


def test_a_successful_login_clears_the_count(colleague):
    for _ in range(2):
        for _ in range(LIMIT - 1):
            log_in("colleague", "wrong guess")
        assert logged_in(log_in("colleague", PASSWORD))


def test_api_keys_are_never_counted_nor_locked_out(colleague, account, anonymous):
    for _ in range(LIMIT):
        log_in("colleague", "wrong guess", address="127.0.0.1")  # the address the API client uses too
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer mk_test_" + "x" * 32)
    bad = [anonymous.get("/v1/messages").status_code for _ in range(LIMIT * 2)]

    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account)}")
    assert bad == [401] * (LIMIT * 2) and anonymous.get("/v1/messages").status_code == 200
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["colleague"]


def test_the_stored_attempt_holds_no_password(colleague):
    log_in("colleague", "wrong guess")

    assert "wrong guess" not in str(list(AccessAttempt.objects.values()))


# Passwords

@pytest.mark.parametrize("password, why", [
    ("Xk3!v9q", "too short"),
    ("password1234", "too common"),
    ("784512369852", "entirely numeric"),
    ("colleague2026", "too similar"),
])
def test_a_weak_password_is_refused(colleague, password, why):
    with pytest.raises(ValidationError, match=why):
        validate_password(password, colleague)


def test_a_long_uncommon_password_passes(colleague):
    validate_password(PASSWORD, colleague)


def test_a_staff_users_own_password_change_is_validated(colleague):
    client = Client()
    client.force_login(colleague)

    response = client.post(reverse("admin:password_change"), {
        "old_password": PASSWORD, "new_password1": "password1234", "new_password2": "password1234"})

    assert response.status_code == 200 and "This password is too common" in response.content.decode()
    colleague.refresh_from_db()
    assert colleague.check_password(PASSWORD)


def test_a_superuser_setting_or_creating_a_password_in_the_admin_is_validated(admin_client, colleague):
    changed = admin_client.post(reverse("admin:auth_user_password_change", args=[colleague.pk]), {
        "password1": "short", "password2": "short"})
    created = admin_client.post(reverse("admin:auth_user_add"), {
        "username": "newcomer", "usable_password": "true", "password1": "12345678901234",
        "password2": "12345678901234"})

    assert "This password is too short" in changed.content.decode()
    assert "This password is entirely numeric" in created.content.decode()
    colleague.refresh_from_db()
    assert colleague.check_password(PASSWORD) and not User.objects.filter(username="newcomer").exists()


def createsuperuser(username: str, password: str):
    with mock.patch.dict(os.environ, {"DJANGO_SUPERUSER_PASSWORD": password}):
        call_command("createsuperuser", interactive=False, username=username, email="root@example.com", verbosity=0)


@pytest.mark.parametrize("username, password, why", [
    ("root-person", "password", "too common"),
    ("margaret-hamilton", "margaret-hamilton", "too similar"),
])
def test_createsuperuser_noinput_refuses_a_weak_password(db, username, password, why):
    with pytest.raises(CommandError, match=why):
        createsuperuser(username, password)

    assert not User.objects.filter(username=username).exists()


def test_createsuperuser_noinput_accepts_a_strong_password(db):
    createsuperuser("root-person", PASSWORD)

    assert User.objects.get(username="root-person", is_superuser=True).check_password(PASSWORD)
