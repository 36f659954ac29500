"""`manage.py check --deploy` flags what leaves the staff console open: no password validators, any host."""

import os
import secrets
import subprocess
import sys

from django.conf import settings
from django.core import checks
import pytest

PRODUCTION = {"DEBUG": "false", "MITTIS_HTTPS": "true", "SECRET_KEY": secrets.token_urlsafe(60)}


def deploy_check_ids() -> set[str]:
    return {message.id for message in checks.run_checks(include_deployment_checks=True)
            if message.id.startswith("mittis.")}


@pytest.mark.parametrize("setting, value, flagged", [
    ("AUTH_PASSWORD_VALIDATORS", [], "mittis.W001"),
    ("ALLOWED_HOSTS", ["api.example.com", "*"], "mittis.W002"),
])
def test_the_deploy_check_flags_an_open_console(settings, setting, value, flagged):
    assert deploy_check_ids() == set()

    setattr(settings, setting, value)

    assert deploy_check_ids() == {flagged}
    assert not [m for m in checks.run_checks() if m.id == flagged]  # a deploy check: not on every start


def test_manage_py_check_deploy_fails_on_any_host_in_production_settings():
    env = {**os.environ, **PRODUCTION, "ALLOWED_HOSTS": "*"}
    checked = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=env,
                             cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60)

    assert checked.returncode == 1 and "mittis.W002" in checked.stderr + checked.stdout
