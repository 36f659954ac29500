"""Every error code the API can answer with: the one list behind errors, /docs/errors and the schema.

A code is a promise: once published it keeps its meaning. Add codes; never repurpose one.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    code: str
    type: str
    status: int
    message: str  # the default human message
    description: str  # what it means and what to do, for the catalogue


_CODES = [
    # --- invalid_request_error: the request itself is wrong -------------------------------------
    ErrorCode("parameter_missing", "invalid_request_error", 400,
              "A required parameter is missing.",
              "A required parameter was not sent, or was sent as null. `field` names it."),
    ErrorCode("parameter_invalid", "invalid_request_error", 400,
              "A parameter has an invalid value.",
              "The value of `field` is not one the parameter accepts; the message says which are."),
    ErrorCode("parameter_invalid_type", "invalid_request_error", 400,
              "A parameter has the wrong type.",
              "The value of `field` is the wrong JSON type, for example a number where a string is expected."),
    ErrorCode("parameter_unknown", "invalid_request_error", 400,
              "The request has a parameter this endpoint does not accept.",
              "`field` is not a parameter of this endpoint. Check its spelling against the reference; "
              "unknown parameters are refused rather than ignored so that a typo never goes unnoticed."),
    ErrorCode("parameter_out_of_range", "invalid_request_error", 400,
              "A parameter is out of range.",
              "The number or length of `field` is outside the range the reference gives."),
    ErrorCode("invalid_phone_number", "invalid_request_error", 400,
              "The phone number is not a valid E.164 number.",
              "`to` (or `from`) must be a valid phone number in E.164 format: a `+`, the country code and "
              "the national number, without spaces or punctuation, like `+18045550199`. A number in that format "
              "that does not exist (`+10000000000`: no numbering plan has it) gets this code too, and a message "
              "that says so."),
    ErrorCode("unknown_sender", "invalid_request_error", 400,
              "The sender is not registered to your account.",
              "`from` must be a phone number or alphanumeric sender id registered to your account (and the `to` of "
              "a test inbound message, `POST /v1/test_helpers/inbound_messages`, one of those). `field` names it."),
    ErrorCode("body_empty", "invalid_request_error", 400,
              "The message body is empty.",
              "`body` must have at least one character."),
    ErrorCode("body_too_long", "invalid_request_error", 400,
              "The message body is longer than 1,600 characters.",
              "`body` may have at most 1,600 characters. Split longer texts into several messages."),
    ErrorCode("metadata_invalid", "invalid_request_error", 400,
              "The metadata is invalid.",
              "`metadata` is an object of at most 20 keys; keys are strings of 1-40 characters and values "
              "strings of at most 500 characters. `field` names the key at fault."),
    ErrorCode("invalid_json", "invalid_request_error", 400,
              "The request body is not valid JSON.",
              "The body could not be parsed as JSON. Check quoting and trailing commas."),
    ErrorCode("invalid_request_body", "invalid_request_error", 400,
              "The request body must be a JSON object.",
              "The body parsed, but it is not a JSON object (for example an array or a string)."),
    ErrorCode("request_too_large", "invalid_request_error", 413,
              "The request body is too large.",
              "The body is over the size the API accepts (1 MB: 1,048,576 bytes). A message body is at most 1,600 characters."),
    ErrorCode("idempotency_key_invalid", "invalid_request_error", 400,
              "The Idempotency-Key header is invalid.",
              "`Idempotency-Key` must be 1 to 255 printable ASCII characters (a UUID is ideal), optionally "
              "as a quoted string. `field` is the header's name. Nothing was done."),
    ErrorCode("api_version_invalid", "invalid_request_error", 400,
              "The API version is not one of Mittis's versions.",
              "`Mittis-Version` (or a webhook endpoint's `api_version`) must name a version of the API: a date "
              "written `YYYY-MM-DD`, one of those listed at `/docs/changelog`. `field` names the header or the "
              "field. Nothing was done."),
    ErrorCode("url_invalid", "invalid_request_error", 400,
              "This URL cannot receive webhooks.",
              "Webhooks go only to `https://` URLs (`http://` too in test mode) whose host resolves to public "
              "addresses: never to private, loopback or link-local ones. The message says which rule failed."),
    ErrorCode("endpoint_disabled", "invalid_request_error", 400,
              "The webhook endpoint is disabled.",
              "Events are not sent to a disabled endpoint. Enable it with `PATCH /v1/webhook_endpoints/{id}` "
              "and `\"status\": \"enabled\"`, then redeliver or recover."),
    ErrorCode("recipient_opted_out", "invalid_request_error", 422,
              "The recipient has opted out of your messages.",
              "The number replied STOP (or another opt-out keyword) to one of your senders, or a carrier refused "
              "a message to it because it unsubscribed. Nothing was sent or charged. It receives your messages "
              "again after it replies START; see `GET /v1/opt_outs`."),
    ErrorCode("message_not_cancelable", "invalid_request_error", 409,
              "This message can no longer be canceled.",
              "Only a `scheduled` message can be canceled (it is then refunded and never sent). A message "
              "already queued or sent is on its way."),
    ErrorCode("message_not_redactable", "invalid_request_error", 409,
              "This message cannot be redacted yet.",
              "A message's body can be redacted once the message is final (delivered, undelivered, failed, "
              "canceled, expired or received); before that it is still needed to send it."),
    ErrorCode("message_not_sent", "invalid_request_error", 409,
              "This message has not been sent yet.",
              "A delivery report (`POST /v1/test_helpers/messages/{id}/delivery_report`) settles a message a carrier "
              "has accepted: one in status `sent`. A `scheduled`, `queued` or `sending` message is not there yet: "
              "wait for its `message.sent` event, then report. An inbound message is never sent."),
    ErrorCode("message_already_final", "invalid_request_error", 409,
              "This message's status is final already.",
              "The message is `delivered`, `undelivered`, `failed`, `canceled` or `expired`, and a final status "
              "never changes: a real carrier's late report would be ignored too. Send a new message to report on "
              "(to `+15005550003` in test mode, which the sandbox never reports on)."),
    ErrorCode("export_not_ready", "invalid_request_error", 409,
              "The export has not finished.",
              "Follow `GET /v1/exports/{id}` until `status` is `succeeded`, then download it. A `failed` export "
              "says why in `error`; start a new one."),
    ErrorCode("export_expired", "invalid_request_error", 410,
              "The export's file has been deleted.",
              "Export files are kept 7 days after they are written. Start a new export of the same range."),
    ErrorCode("unsupported_media_type", "invalid_request_error", 415,
              "The request body must be sent as application/json.",
              "Send `Content-Type: application/json` with a JSON body."),
    ErrorCode("not_acceptable", "invalid_request_error", 406,
              "The API answers only in application/json.",
              "The `Accept` header asked for a format the API does not produce; accept `application/json`."),
    ErrorCode("method_not_allowed", "invalid_request_error", 405,
              "This method is not allowed on this URL.",
              "The URL exists but does not accept this HTTP method; the `Allow` header lists those it does."),
    # The web server's own refusals (mittis/asgi.py), before the request reaches the API.
    ErrorCode("request_timeout", "invalid_request_error", 408,
              "The request body was not received in time.",
              "The whole body must arrive within 10 seconds of the headers; the connection is then closed. "
              "Send the body with the request, and retry with the same `Idempotency-Key`."),
    ErrorCode("uri_too_long", "invalid_request_error", 414,
              "The request URL is too long.",
              "The path and query string together may have at most 8,190 bytes. Send long values in a JSON body."),
    ErrorCode("headers_too_large", "invalid_request_error", 431,
              "The request headers are too large.",
              "The headers together may have at most 32 KiB."),
    # --- authentication_error / permission_error -------------------------------------------------
    ErrorCode("missing_api_key", "authentication_error", 401,
              "No API key was provided. Send it as 'Authorization: Bearer <key>'.",
              "The request had no `Authorization` header. Send your key as a bearer token."),
    ErrorCode("invalid_api_key", "authentication_error", 401,
              "The API key is invalid or has been revoked.",
              "The key is unknown, malformed or revoked, or its account is deactivated. Keys start "
              "`mk_live_` or `mk_test_`; create a new one if it was revoked."),
    ErrorCode("permission_denied", "permission_error", 403,
              "This key may not perform this request.",
              "The key is valid but not allowed to do this."),
    # --- not_found_error -------------------------------------------------------------------------
    ErrorCode("resource_missing", "not_found_error", 404,
              "No such object.",
              "No object with this id exists for your account in this mode. Test-mode keys see only "
              "test objects, live keys only live ones."),
    ErrorCode("url_not_found", "not_found_error", 404,
              "Unrecognised request URL.",
              "No endpoint has this URL. Every endpoint starts with `/v1/`; see the reference at `/docs`."),
    # --- billing_error -----------------------------------------------------------------------------
    ErrorCode("insufficient_funds", "billing_error", 402,
              "Your balance does not cover this message.",
              "Live messages are paid from your prepaid balance when they are accepted. Top up, or check "
              "the price first with `POST /v1/messages/preview`. Nothing was queued or charged."),
    # --- idempotency_error: an Idempotency-Key that cannot be honoured -------------------------
    ErrorCode("idempotency_key_reused", "idempotency_error", 422,
              "This Idempotency-Key was used for a different request.",
              "A key names one request: the same method, path and body. This key was first used with a "
              "different one. Send a new key for a new request; repeat the first request exactly to get its answer."),
    ErrorCode("idempotency_key_in_use", "idempotency_error", 409,
              "A request with this Idempotency-Key is still being processed.",
              "Another request with the same key has not finished yet. Retry after a moment (see `Retry-After`): "
              "you will get its answer, and nothing is done twice."),
    # --- rate_limit_error ---------------------------------------------------------------------
    ErrorCode("rate_limit_exceeded", "rate_limit_error", 429,
              "Too many requests.",
              "This API key (or, without a key, this client address) has used its requests for the current "
              "window. Wait the seconds in `Retry-After`; the `RateLimit` headers show the limit and what is left."),
    ErrorCode("too_many_exports", "rate_limit_error", 429,
              "Too many of your exports are running.",
              "An account may have 3 exports pending or running at once, in each mode. Wait the seconds in "
              "`Retry-After` (or follow `GET /v1/exports` until one has finished), then start this one again. "
              "Nothing was started."),
    # --- api_error: ours ----------------------------------------------------------------------------
    ErrorCode("service_unavailable", "api_error", 503,
              "The service is briefly unavailable. Retry shortly.",
              "A service Mittis depends on (its database, or the rate limiter's Redis where it is set to refuse "
              "requests it cannot count) did not answer, for example during a restart. The "
              "request may not have been carried out: retry after `Retry-After` seconds with the same "
              "`Idempotency-Key`, and it is done exactly once."),
    ErrorCode("internal_error", "api_error", 500,
              "Something went wrong on our side. It has been logged.",
              "An unexpected error on our side. The request's database changes were rolled back; "
              "retry, and quote the `request_id` if it persists."),
]

ERROR_CODES: dict[str, ErrorCode] = {entry.code: entry for entry in _CODES}
ERROR_TYPES = [
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "idempotency_error", "rate_limit_error", "billing_error", "api_error",
]
