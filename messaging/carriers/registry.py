"""Which carrier sends a message. Test mode always uses the sandbox, so it never reaches a phone."""

from django.conf import settings

from messaging.carriers.base import SmsClient
from messaging.carriers.sandbox import SandboxClient

_CLIENTS: dict[str, SmsClient] = {client.name: client for client in [SandboxClient()]}


def get_carrier(name: str) -> SmsClient:
    return _CLIENTS[name]


def carrier_for(*, livemode: bool) -> SmsClient:
    if not livemode:
        return _CLIENTS["sandbox"]
    return _CLIENTS[settings.MITTIS_LIVE_CARRIER]
