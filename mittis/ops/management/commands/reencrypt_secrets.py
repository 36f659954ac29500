"""Re-encrypt every secret at rest under the newest key of MITTIS_ENCRYPTION_KEYS.

Key rotation: put the new key first in MITTIS_ENCRYPTION_KEYS (keep the old one after it), deploy,
run this command, then remove the old key. Stored idempotent answers are re-sealed too (any written in the
clear, before answers were sealed, are sealed now); answers are kept a day, so once a day has passed since the
new key was deployed, none under the old key is left even without this command.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from messaging.models import Carrier
from mittis import crypto
from mittis.api.idempotency import reencrypt_stored_answers
from mittis.api.models import IdempotencyRecord
from webhooks.models import CallbackSecret, WebhookEndpoint

# (model, its encrypted fields): every place a secret is stored.
ENCRYPTED_FIELDS = [
    (WebhookEndpoint, ["secret_encrypted", "previous_secret_encrypted"]),
    (CallbackSecret, ["secret_encrypted", "previous_secret_encrypted"]),
    (Carrier, ["credentials_encrypted"]),
]


class Command(BaseCommand):
    help = "Re-encrypt stored secrets and idempotent answers with the first key of MITTIS_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        for model, fields in ENCRYPTED_FIELDS:
            count = 0
            for pk in model.objects.values_list("pk", flat=True).iterator():
                with transaction.atomic():
                    row = model.objects.select_for_update().get(pk=pk)
                    for field in fields:
                        if getattr(row, field):
                            setattr(row, field, crypto.reencrypt(getattr(row, field)))
                    row.save(update_fields=fields)
                count += 1
            self.stdout.write(f"{model._meta.label}: {count} re-encrypted")
        self.stdout.write(f"{IdempotencyRecord._meta.label}: {reencrypt_stored_answers()} re-encrypted")

