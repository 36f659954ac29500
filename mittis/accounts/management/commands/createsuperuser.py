"""Django's createsuperuser, with the password validators applied to `--noinput` too: Django's skips them for
DJANGO_SUPERUSER_PASSWORD, so a deploy script could make a superuser whose password is `password`."""

import os

from django.contrib.auth.management.commands import createsuperuser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError


class Command(createsuperuser.Command):
    help = createsuperuser.Command.help + " The password must pass AUTH_PASSWORD_VALIDATORS."

    def handle(self, *args, **options):
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not options["interactive"] and password is not None:
            fields = [self.UserModel.USERNAME_FIELD, *self.UserModel.REQUIRED_FIELDS]
            # The user to be, for the similarity validator; a field with no value is simply not compared.
            attributes = {name: options.get(name) or os.environ.get(f"DJANGO_SUPERUSER_{name.upper()}", "")
                          for name in fields if not self.UserModel._meta.get_field(name).many_to_many}
            try:
                validate_password(password, self.UserModel(**attributes))
            except ValidationError as weak:
                raise CommandError("DJANGO_SUPERUSER_PASSWORD: " + " ".join(weak.messages))
        return super().handle(*args, **options)
