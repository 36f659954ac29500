"""Twilio's REST API as a carrier, so a customer can route through their own Twilio account.

Sends with `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, HTTP Basic with the
account SID and auth token (https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource).
Every send asks for status callbacks at `/carriers/<name>/twilio/status?ref=<our message id>`, so a report
matches its message even when Twilio's answer to the submit never reached us. Twilio signs callbacks and
inbound messages with `X-Twilio-Signature` (https://www.twilio.com/docs/usage/webhooks/webhooks-security):
HMAC-SHA1 with the auth token, or with a SharedKey and HMAC-SHA256 (or SHA1) where a Webhook Rule says so,
checked by `signature_valid` before anything is read.

Carrier settings (not secret): `account_sid`, `base_url` (default https://api.twilio.com), optional
`messaging_service_sid`. Credentials (encrypted at rest): `auth_token`, optional `webhook_shared_keys`
(`{"<SharedKey id>": "<its secret>"}`: a key being rotated out and its successor may both be there).

The contract tests send through Prism serving Twilio's own OpenAPI description of this API
(tests/messaging/carriers/test_twilio.py).
"""

import base64
from dataclasses import dataclass
import hashlib
import hmac
import json
import logging
from urllib.parse import quote, urlencode

from django.conf import settings
import urllib3

from messaging import statuses
from messaging.carriers.base import (
    CarrierRejectedError, CarrierTemporaryError, DeliveryReport, InboundSms, OutboundSms, SendResult, SmsClient,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.twilio.com"
USER_AGENT = "Mittis/1 (carrier: twilio)"
# Twilio answers a create in well under a second; a slow connect means it is not reachable (fail over),
# while a slow answer after the request went out may still be a message sent (never sent twice).
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
# Twilio's answers are a few KB; anything larger is not an answer we understand.
MAX_RESPONSE_BYTES = 64 * 1024

# One pool per process: Twilio is one host, and a kept-alive TLS connection saves a handshake per message.
# urllib3 drops a pooled connection the server has closed before reusing it, so a stale connection does
# not pass for a request that went out (which would make the send look `maybe_sent`).
_POOL = urllib3.PoolManager(num_pools=4, maxsize=4, retries=False)


# --- Twilio's message statuses -> ours ----------------------------------------------------------
# https://www.twilio.com/docs/messaging/api/message-resource#message-status-values
# None: a step before the carrier has the message (or an inbound-only status): nothing to apply.
STATUS_MAP: dict[str, str | None] = {
    "accepted": None,  # a Messaging Service took the request and is picking a sender
    "scheduled": None,  # we never schedule through Twilio (ScheduleType is not sent)
    "queued": None,  # waiting in Twilio's queue
    "sending": None,  # on its way from Twilio to the carrier
    "sent": statuses.SENT,  # the carrier accepted it
    "delivered": statuses.DELIVERED,  # the carrier confirmed delivery to the handset
    "read": statuses.DELIVERED,  # read receipts (WhatsApp, RCS) imply delivery
    "undelivered": statuses.UNDELIVERED,  # the carrier could not deliver it
    "partially_delivered": statuses.UNDELIVERED,  # not every part arrived
    "failed": statuses.FAILED,  # Twilio could not send it (queue overflow, account, content...)
    "canceled": statuses.FAILED,  # canceled before sending (only a scheduled message can be)
    "receiving": None,  # inbound statuses: an inbound message comes to the inbound webhook
    "received": None,
}


@dataclass(frozen=True)
class TwilioError:
    code: str  # our normalised code
    message: str
    fail_over: bool = False  # this Twilio account cannot send it, another carrier may (CarrierRejectedError)


# --- Twilio's error codes -> ours ---------------------------------------------------------------
# https://www.twilio.com/docs/api/errors (each code at https://www.twilio.com/docs/api/errors/<code>)
# `ErrorCode` on a status callback (the 30xxx delivery errors):
REPORT_ERRORS: dict[int, TwilioError] = {
    30001: TwilioError("carrier_unavailable", "Twilio's queue for the sender overflowed."),
    30002: TwilioError("carrier_rejected", "The Twilio account is suspended."),
    30003: TwilioError("unreachable", "The recipient's phone is unreachable (switched off or out of coverage)."),
    30004: TwilioError("blocked", "The message was blocked (the recipient blocks the sender, or the number "
                                  "cannot receive it)."),
    30005: TwilioError("unknown_subscriber", "The recipient's number is unknown or no longer in use."),
    30006: TwilioError("landline", "The recipient's number is a landline or its carrier cannot take SMS."),
    30007: TwilioError("blocked", "The recipient's carrier filtered the message as spam or a policy violation."),
    30008: TwilioError("unknown_error", "The recipient's carrier did not say why the message was not delivered."),
    30009: TwilioError("unknown_error", "Part of the message never arrived."),
    30010: TwilioError("carrier_rejected", "The message cost more than its maximum price."),
    30034: TwilioError("blocked", "The sender is not registered for A2P 10DLC messaging in the US."),
    21610: TwilioError("recipient_opted_out", "The recipient has opted out of messages from this sender."),
}
# The answer to a create (`code` in a 4xx body): a rejection of this message, final (for this carrier only
# where `fail_over`).
SEND_ERRORS: dict[int, TwilioError] = {
    21211: TwilioError("invalid_phone_number", "Twilio does not consider the recipient a valid phone number."),
    21214: TwilioError("unreachable", "The recipient's number cannot be reached."),
    21408: TwilioError("carrier_rejected", "The Twilio account may not send to the recipient's country (its "
                                           "geographic permissions).", fail_over=True),
    21610: TwilioError("recipient_opted_out", "The recipient has opted out of messages from this sender."),
    21612: TwilioError("unreachable", "Twilio cannot route a message from this sender to the recipient."),
    21614: TwilioError("landline", "The recipient's number is not a mobile number."),
    21617: TwilioError("body_too_long", "The message is longer than Twilio's 1,600 characters."),
    30007: TwilioError("blocked", "The message was filtered as spam or a policy violation."),
}
# HTTP statuses that say nothing against the message but that this account cannot send now (wrong
# credentials, unknown account, throttling, a request cut short): another carrier may take it.
FAILOVER_STATUSES = {401, 403, 404, 408, 429}


def _error_code(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class TwilioClient(SmsClient):
    kind = "twilio"

    # --- Sending --------------------------------------------------------------------------------
    def message_fields(self, sms: OutboundSms) -> dict[str, str]:
        """The form fields of the create request (Twilio's `CreateMessageRequest`)."""
        fields = {"To": sms.to, "From": sms.sender, "Body": sms.body}
        service_sid = self.carrier.settings.get("messaging_service_sid")
        if service_sid:
            # The sender stays the customer's choice; it must be in the service's sender pool.
            fields["MessagingServiceSid"] = service_sid
        callback = self.status_callback_url(sms.reference)
        if callback:
            fields["StatusCallback"] = callback
        if sms.validity_seconds:
            # Twilio's queue drops the message when its validity runs out (1 to 36,000 seconds).
            fields["ValidityPeriod"] = str(min(max(sms.validity_seconds, 1), 36000))
        return fields

    def status_callback_url(self, reference: str) -> str:
        """Where Twilio reports this message; blank when this server has no public URL (no reports)."""
        if not settings.MITTIS_PUBLIC_URL:
            return ""
        return (f"{settings.MITTIS_PUBLIC_URL}/carriers/{quote(self.name)}/twilio/status?"
                + urlencode({"ref": reference}))

    def messages_url(self) -> str:
        base_url = (self.carrier.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        return f"{base_url}/2010-04-01/Accounts/{quote(self.carrier.settings['account_sid'], safe='')}/Messages.json"

    def try_send_sms(self, sms: OutboundSms) -> SendResult:
        account_sid = self.carrier.settings.get("account_sid", "")
        auth_token = self.carrier.credentials.get("auth_token", "")
        if not account_sid or not auth_token:
            raise CarrierTemporaryError("carrier_unavailable",
                                        f"The Twilio carrier '{self.name}' has no account SID or auth token.")
        basic = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded",
                   "Accept": "application/json", "User-Agent": USER_AGENT}
        try:
            response = _POOL.request("POST", self.messages_url(), body=urlencode(self.message_fields(sms)),
                                     headers=headers, redirect=False, retries=False, preload_content=False,
                                     timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT))
            try:
                content = response.read(MAX_RESPONSE_BYTES, decode_content=True)
            finally:
                response.release_conn()
        # Order matters: NewConnectionError (refused, no DNS) is a ConnectTimeoutError, and both happen
        # before a byte of the request is sent.
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as failure:
            raise CarrierTemporaryError("carrier_unavailable", f"Could not connect to Twilio: {_reason(failure)}")
        except urllib3.exceptions.SSLError as failure:  # the TLS handshake precedes the request
            raise CarrierTemporaryError("carrier_unavailable", f"TLS with Twilio failed: {_reason(failure)}")
        except urllib3.exceptions.HTTPError as failure:
            # A read timeout, or the connection dropped after the request went out: Twilio may have the
            # message. The status callback (matched by our reference) settles it.
            raise CarrierTemporaryError("carrier_no_answer", f"Twilio did not answer: {_reason(failure)}",
                                        maybe_sent=True)
        return self._result(response.status, content)

    def _result(self, status: int, content: bytes) -> SendResult:
        try:
            answer = json.loads(content)
        except ValueError:
            answer = None
        answer = answer if isinstance(answer, dict) else {}
        if 200 <= status < 300:
            sid = answer.get("sid")
            if not isinstance(sid, str) or not sid:
                raise CarrierTemporaryError("carrier_bad_response", "Twilio accepted the message without a sid.",
                                            carrier_status=str(status), maybe_sent=True)
            return SendResult(carrier_message_id=sid)
        code = _error_code(answer.get("code"))
        carrier_status = str(code) if code is not None else str(status)
        if code is not None:
            said = f"Twilio error {code}: {answer.get('message') or '(no message)'}"
        else:
            said = f"Twilio answered HTTP {status}."
        if status == 504:
            # The gateway gave up waiting for Twilio's back end, which may have created the message.
            raise CarrierTemporaryError("carrier_no_answer", said[:300], carrier_status=carrier_status,
                                        maybe_sent=True)
        if status >= 500 or status in FAILOVER_STATUSES or not 400 <= status < 500:
            code_name = "carrier_throttled" if status == 429 else "carrier_unavailable"
            raise CarrierTemporaryError(code_name, said[:300], carrier_status=carrier_status)
        known = SEND_ERRORS.get(code) if code is not None else None
        if known:
            raise CarrierRejectedError(known.code, f"{known.message} ({said})"[:300], carrier_status=carrier_status,
                                       fail_over=known.fail_over)
        raise CarrierRejectedError("carrier_rejected", f"Twilio refused the message ({said})"[:300],
                                   carrier_status=carrier_status)

    # --- What Twilio sends us ---------------------------------------------------------------------
    def signature_valid(self, *, url: str, params: dict[str, list[str]], signature: str,
                        signature_settings: str = "") -> bool:
        """Whether Twilio signed this request: with the auth token and HMAC-SHA1, or, when the request has an
        `X-Twilio-Webhooks-Signature-Settings` header (`signature_settings`), with the SharedKey and the
        algorithm it names."""
        key, algorithm = parse_signature_settings(signature_settings) if signature_settings else ("", HMAC_SHA1)
        if algorithm not in SIGNATURE_ALGORITHMS:
            logger.warning("carrier=%s request signed with %r, an algorithm we do not know", self.name, algorithm)
            return False
        credentials = self.carrier.credentials
        if signature_settings:
            shared_keys = credentials.get("webhook_shared_keys")
            secret = shared_keys.get(key) if isinstance(shared_keys, dict) else None
            if not secret:
                logger.warning("carrier=%s request signed with SharedKey %r, which is not in its "
                               "webhook_shared_keys", self.name, key)
        else:
            secret = credentials.get("auth_token")
        return isinstance(secret, str) and bool(secret) and signature_valid(
            secret=secret, url=url, params=params, signature=signature, algorithm=algorithm)

    def parse_delivery_report(self, payload: dict, *, reference: str = "") -> DeliveryReport | None:
        """A status callback's form fields as our report; None for a status with nothing to apply
        (Twilio still has the message). `reference` is the `ref` of the callback URL we asked for."""
        twilio_status = (payload.get("MessageStatus") or payload.get("SmsStatus") or "").lower()
        sid = payload.get("MessageSid") or payload.get("SmsSid") or ""
        if not sid or not twilio_status:
            raise ValueError("A Twilio status callback needs MessageSid and MessageStatus.")
        status = STATUS_MAP.get(twilio_status)
        if status is None:
            if twilio_status not in STATUS_MAP:
                logger.warning("carrier=%s unknown Twilio status %r for %s ignored", self.name, twilio_status, sid)
            return None
        error_code = error_message = ""
        if status in (statuses.UNDELIVERED, statuses.FAILED):
            code = _error_code(payload.get("ErrorCode"))
            known = REPORT_ERRORS.get(code) if code is not None else None
            if known:
                error_code, error_message = known.code, known.message
            elif status == statuses.FAILED:
                error_code, error_message = "carrier_rejected", "Twilio did not send the message."
            else:
                error_code, error_message = "unknown_error", "The recipient's carrier did not deliver the message."
            if payload.get("ErrorMessage"):
                error_message = str(payload["ErrorMessage"])[:300]
            if code is not None:
                error_message = f"{error_message} (Twilio error {code})"
        return DeliveryReport(carrier_message_id=sid, status=status, carrier_status=twilio_status,
                              error_code=error_code, error_message=error_message, reference=reference)

    def parse_inbound(self, payload: dict) -> InboundSms:
        sender, to = payload.get("From") or "", payload.get("To") or ""
        if not sender or not to:
            raise ValueError("A Twilio inbound message needs From and To.")
        return InboundSms(sender=sender, to=to, body=payload.get("Body") or "",
                          carrier_message_id=payload.get("MessageSid") or payload.get("SmsSid") or "")


# --- X-Twilio-Signature -------------------------------------------------------------------------
# Where a Webhook Rule matches the URL, Twilio signs with the rule's SharedKey and the algorithm its Setting
# names, and says which in `X-Twilio-Webhooks-Signature-Settings: key=<SharedKey id>,algorithm=HMAC_SHA256`
# (https://www.twilio.com/docs/usage/webhooks/webhook-shared-keys); only the hash changes. This reads the
# header as Twilio's libraries do (twilio-python's request_validator.get_signature_algorithm, twilio-node's
# webhooks.getSignatureAlgorithm): no `algorithm` means HMAC_SHA1, and an algorithm we do not know is refused.
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
HMAC_SHA1, HMAC_SHA256 = "HMAC_SHA1", "HMAC_SHA256"
SIGNATURE_ALGORITHMS = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}


def parse_signature_settings(header: str) -> tuple[str, str]:
    """The SharedKey id and the algorithm (upper case) of an `X-Twilio-Webhooks-Signature-Settings` header."""
    fields = {}
    for part in header.split(","):
        name, separator, value = part.partition("=")
        if separator and value.strip():
            fields.setdefault(name.strip(), value.strip())
    return fields.get("key", ""), fields.get("algorithm", HMAC_SHA1).upper()


def expected_signature(*, secret: str, url: str, params: dict[str, list[str]], algorithm: str = HMAC_SHA1) -> str:
    """Twilio's signature of a request: an HMAC (`algorithm`), keyed with the auth token or a SharedKey's
    secret, over the full URL followed by every POST parameter's name and value, sorted by name (a repeated
    name's values sorted too), in base64."""
    data = url + "".join(name + value for name in sorted(params) for value in sorted(set(params[name])))
    digest = hmac.new(secret.encode(), data.encode(), SIGNATURE_ALGORITHMS[algorithm]).digest()
    return base64.b64encode(digest).decode()


def signature_valid(*, secret: str, url: str, params: dict[str, list[str]], signature: str,
                    algorithm: str = HMAC_SHA1) -> bool:
    """Whether `signature` is Twilio's for this request. Twilio may have signed the URL with or without
    the scheme's default port (behind a proxy the two differ), so both are accepted, as its libraries do."""
    if not signature:
        return False
    given = signature.encode()  # compare_digest refuses a str with non-ASCII characters: a header may have them
    return any(hmac.compare_digest(expected_signature(secret=secret, url=candidate, params=params,
                                                      algorithm=algorithm).encode(), given)
               for candidate in dict.fromkeys(_url_variants(url)))


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its port and with the scheme's default port, kept character for
    character otherwise (a signature covers the exact text)."""
    scheme, separator, rest = url.partition("://")
    default_port = {"https": ":443", "http": ":80"}.get(scheme.lower())
    if not separator or not default_port:
        return [url]
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i != -1), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    port_at = authority.find(":", authority.rfind("]") + 1)  # an IPv6 literal has colons of its own
    host = authority if port_at == -1 else authority[:port_at]
    prefix = f"{scheme}://"
    return [url, prefix + host + tail, prefix + host + default_port + tail]


def _reason(failure: Exception) -> str:
    reason = getattr(failure, "reason", None) or failure
    text = str(reason)
    if "Connection refused" in text:
        return "connection refused"
    return text[:300]
