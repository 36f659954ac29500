"""`manage.py check --deploy` checks of the staff console's defences that Django's own leave out."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

EMPTY_PASSWORD_VALIDATORS = Warning(
    "AUTH_PASSWORD_VALIDATORS is empty: staff may choose any password, such as 'password'.",
    hint="Keep the validators of mittis/settings.py (similarity, length 12, common, numeric).",
    id="mittis.W001")
ANY_HOST = Warning(
    "ALLOWED_HOSTS contains '*': any Host header is answered, so links built from it (password resets, "
    "redirects, absolute URLs) can point at an attacker's host.",
    hint="Set ALLOWED_HOSTS to the host names Mittis is served under.",
    id="mittis.W002")


@register(Tags.security, deploy=True)
def staff_console_deploy_check(app_configs, **kwargs):
    found = []
    if not settings.AUTH_PASSWORD_VALIDATORS:
        found.append(EMPTY_PASSWORD_VALIDATORS)
    if "*" in settings.ALLOWED_HOSTS:
        found.append(ANY_HOST)
    return found
