"""Secrets are encrypted with rotatable keys: a new key can be introduced and old values re-encrypted."""

import base64
import secrets

from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
import pytest

from webhooks.models import CallbackSecret, WebhookEndpoint
from webhooks.services import callback_secret_get, signing_secrets


def test_rotating_the_encryption_key_keeps_every_secret(settings, api, receiver, endpoint):
    old_key = settings.MITTIS_ENCRYPTION_KEYS[0]
    callback = signing_secrets(callback_secret_get(account_id=WebhookEndpoint.objects.get().account_id,
                                                   livemode=False))[0]
    new_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    settings.MITTIS_ENCRYPTION_KEYS = [new_key, old_key]

    from messaging.models import Carrier
    carrier = Carrier(name="smsc", kind="smpp")  # carrier credentials too
    carrier.credentials = {"password": "pw-123"}
    carrier.save()

    call_command("reencrypt_secrets", stdout=open("/dev/null", "w"))

    settings.MITTIS_ENCRYPTION_KEYS = [new_key]  # the old key is gone
    assert signing_secrets(WebhookEndpoint.objects.get()) == [endpoint[1]]
    assert signing_secrets(CallbackSecret.objects.get()) == [callback]
    assert Carrier.objects.get(name="smsc").credentials == {"password": "pw-123"}
    with pytest.raises(InvalidToken):
        Fernet(old_key.encode()).decrypt(WebhookEndpoint.objects.get().secret_encrypted.encode())
