"""Where carriers call us: delivery reports and inbound messages. Plain Django views, not the customer
API: there is no API key, the carrier's own signature authenticates each request, and nothing here is in
/v1 or its OpenAPI schema. Each answers fast; a carrier retries (or gives up on) a slow webhook.
"""

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from messaging import services
from messaging.carriers.registry import get_carrier
from messaging.carriers.twilio import SIGNATURE_SETTINGS_HEADER, TwilioClient
from messaging.models import Carrier

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _twilio_client(request: HttpRequest, name: str) -> TwilioClient | HttpResponse:
    """The Twilio carrier `name` if this request carries its valid X-Twilio-Signature (keyed and hashed as its
    X-Twilio-Webhooks-Signature-Settings says, when it has one), else the answer."""
    try:
        client = get_carrier(name)
    except Carrier.DoesNotExist:
        return HttpResponse(status=404)
    if not isinstance(client, TwilioClient):
        return HttpResponse(status=404)
    # Twilio signs the URL it was given, which is our public URL: behind a proxy the request's own
    # host and scheme are not those.
    url = settings.MITTIS_PUBLIC_URL + request.get_full_path()
    if not client.signature_valid(url=url, params=dict(request.POST.lists()),
                                  signature=request.headers.get("X-Twilio-Signature", ""),
                                  signature_settings=request.headers.get(SIGNATURE_SETTINGS_HEADER, "")):
        logger.warning("carrier=%s %s with an invalid X-Twilio-Signature refused", name, request.path)
        return HttpResponse(status=403)
    return client


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest, name: str) -> HttpResponse:
    """A message status callback, for the StatusCallback URL every send sets."""
    client = _twilio_client(request, name)
    if isinstance(client, HttpResponse):
        return client
    fields = request.POST.dict()
    try:
        report = client.parse_delivery_report(fields, reference=request.GET.get("ref", ""))
    except ValueError as invalid:
        return HttpResponse(str(invalid), status=400, content_type="text/plain")
    if report is not None:
        services.message_apply_delivery_report(carrier=client.name, report=report, raw=fields)
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest, name: str) -> HttpResponse:
    """An SMS to one of the account's Twilio numbers (the number's "A message comes in" webhook).
    Answers empty TwiML: any reply (HELP) is sent as a message of its own."""
    client = _twilio_client(request, name)
    if isinstance(client, HttpResponse):
        return client
    fields = request.POST.dict()
    try:
        inbound = client.parse_inbound(fields)
    except ValueError as invalid:
        return HttpResponse(str(invalid), status=400, content_type="text/plain")
    services.message_receive(carrier=client.name, inbound=inbound, raw=fields)
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")
