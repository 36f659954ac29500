"""Every operation of the API, by its OpenAPI `operationId`: the one table the resources call through.

A test holds it equal to the server's schema, so an operation the API adds and this SDK lacks fails there.
"""

OPERATIONS: dict[str, tuple[str, str]] = {
    "messages_create": ("POST", "/v1/messages"),
    "messages_preview": ("POST", "/v1/messages/preview"),
    "messages_list": ("GET", "/v1/messages"),
    "messages_retrieve": ("GET", "/v1/messages/{id}"),
    "messages_events": ("GET", "/v1/messages/{id}/events"),
    "messages_cancel": ("POST", "/v1/messages/{id}/cancel"),
    "messages_redact": ("POST", "/v1/messages/{id}/redact"),
    "events_list": ("GET", "/v1/events"),
    "events_retrieve": ("GET", "/v1/events/{id}"),
    "events_redeliver": ("POST", "/v1/events/{id}/redeliver"),
    "webhook_endpoints_create": ("POST", "/v1/webhook_endpoints"),
    "webhook_endpoints_list": ("GET", "/v1/webhook_endpoints"),
    "webhook_endpoints_retrieve": ("GET", "/v1/webhook_endpoints/{id}"),
    "webhook_endpoints_update": ("PATCH", "/v1/webhook_endpoints/{id}"),
    "webhook_endpoints_delete": ("DELETE", "/v1/webhook_endpoints/{id}"),
    "webhook_endpoints_rotate_secret": ("POST", "/v1/webhook_endpoints/{id}/rotate_secret"),
    "webhook_endpoints_deliveries": ("GET", "/v1/webhook_endpoints/{id}/deliveries"),
    "webhook_endpoints_recover": ("POST", "/v1/webhook_endpoints/{id}/recover"),
    "callback_secret_retrieve": ("GET", "/v1/callback_secret"),
    "callback_secret_rotate": ("POST", "/v1/callback_secret/rotate"),
    "exports_create": ("POST", "/v1/exports"),
    "exports_list": ("GET", "/v1/exports"),
    "exports_retrieve": ("GET", "/v1/exports/{id}"),
    "exports_download": ("GET", "/v1/exports/{id}/download"),
    "opt_outs_list": ("GET", "/v1/opt_outs"),
    "balance_retrieve": ("GET", "/v1/balance"),
    "ledger_list": ("GET", "/v1/ledger"),
    "pricing_retrieve": ("GET", "/v1/pricing"),
    "usage_retrieve": ("GET", "/v1/usage"),
    "test_helpers_inbound_messages_create": ("POST", "/v1/test_helpers/inbound_messages"),
    "test_helpers_messages_delivery_report": ("POST", "/v1/test_helpers/messages/{id}/delivery_report"),
}
