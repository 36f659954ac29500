"""An event's body as each receiver gets it: in the API version the receiver is pinned to (an endpoint's
`api_version`; the account's for a message's `status_callback` URL). Events are stored once, in the newest
shape; a receiver on the current version gets the stored bytes as they are, parsed and transformed by nothing."""

import json

from mittis import versions


def payload_json(payload: dict) -> str:
    """An event's JSON as it is stored and sent: compact, UTF-8 as it is."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def payload_in(payload: str, version: str) -> str:
    """The stored `payload` in `version`'s shape: the body to sign and send."""
    if version == versions.current():
        return payload
    return payload_json(versions.downgrade(json.loads(payload), version))
