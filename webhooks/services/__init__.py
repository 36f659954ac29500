"""Writes for webhooks, a module per concern:

- `endpoints`: endpoints and the secrets that sign what they are sent
- `publish`: events and their deliveries, written with the change they report
- `flush`: an endpoint's deliveries, in batches per lane over one connection
- `delivery`: one delivery at a time (retries, `status_callback` URLs), and the sweep
- `attempts`: what an attempt came to, recorded, with the next retry and the endpoint's health
- `payloads`: an event's body in the API version its receiver is pinned to
- `replay`: redelivering an event, recovering an endpoint's failed window, redacting payloads
"""

from webhooks.services.delivery import deliveries_sweep, delivery_attempt
from webhooks.services.endpoints import (
    EndpointWithSecret, callback_secret_get, callback_secret_rotate, callback_url_check, endpoint_create,
    endpoint_delete, endpoint_rotate_secret, endpoint_update, signing_secrets,
)
from webhooks.services.flush import endpoint_flush, endpoint_flush_request
from webhooks.services.publish import NewEvent, deliveries_scheduled, events_publish, published_deliveries
from webhooks.services.replay import endpoint_recover, endpoint_recover_request, event_redeliver, events_redact

__all__ = [
    "EndpointWithSecret", "NewEvent", "callback_secret_get", "callback_secret_rotate", "callback_url_check",
    "deliveries_scheduled", "deliveries_sweep", "delivery_attempt", "endpoint_create", "endpoint_delete",
    "endpoint_flush", "endpoint_flush_request", "endpoint_recover", "endpoint_recover_request",
    "endpoint_rotate_secret", "endpoint_update", "event_redeliver", "events_publish", "events_redact",
    "published_deliveries", "signing_secrets",
]
