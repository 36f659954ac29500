"""Create (or reuse) an account and a sender, and a new API key. The key is the last line printed."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from messaging.serializers import is_alphanumeric_sender, parse_e164
from messaging.services import sender_create
from mittis.accounts.models import Account
from mittis.accounts.services import account_create, api_key_create


class Command(BaseCommand):
    help = "Create an API key for an account (created if new), registering a sender. Prints the key last."

    def add_arguments(self, parser):
        parser.add_argument("--account", default="Demo", help="Account name or acct_ id (created if no such name).")
        parser.add_argument("--sender", action="append", default=[],
                            help="A sender to register: E.164 number or alphanumeric id. Repeatable.")
        parser.add_argument("--live", action="store_true", help="Create a live key (default: test).")
        parser.add_argument("--name", default="", help="A label for the key.")

    def handle(self, *args, account, sender, live, name, **options):
        senders = []
        for value in sender:
            normalised = parse_e164(value) if value.startswith("+") else (value if is_alphanumeric_sender(value) else None)
            if normalised is None:
                raise CommandError(f"{value!r} is neither an E.164 number nor an alphanumeric sender id.")
            senders.append(normalised)
        with transaction.atomic():
            found = Account.objects.filter(public_id=account).first() or Account.objects.filter(name=account).first()
            target = found or account_create(name=account)
            for value in senders:
                sender_create(account=target, value=value)
            created = api_key_create(account=target, livemode=live, name=name)
        self.stderr.write(f"Account {target.public_id} ({target.name}); senders: "
                          f"{', '.join(target.senders.values_list('value', flat=True)) or 'none'}")
        self.stdout.write(created.secret)
