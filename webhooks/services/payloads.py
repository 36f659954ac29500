"""An event's body as each receiver gets it: in the API version the receiver is pinned to (an endpoint's
`api_version`; the account's for a message's `status_callback` URL), signed, with that version named in a
`Mittis-Version` header as the API's answers name theirs. Events are stored once, in the newest shape; a receiver on
the current version gets the stored bytes as they are, parsed and transformed by nothing."""

import json
import time

from mittis import versions
from webhooks import signing


def payload_json(payload: dict) -> str:
    """An event's JSON as it is stored and sent: compact, UTF-8 as it is."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def payload_in(payload: str, version: str) -> str:
    """The stored `payload` in `version`'s shape: the body to sign and send."""
    if version == versions.current():
        return payload
    return payload_json(versions.downgrade(json.loads(payload), version))


def delivery_request(*, payload: str, version: str, secrets: list[str], event_id: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery of an event: its payload in `version`, signed now."""
    body = payload_in(payload, version)
    headers = signing.headers(secrets=secrets, msg_id=event_id, timestamp=int(time.time()), body=body)
    return body.encode(), {**headers, "Mittis-Version": version}
