"""Where carriers call us back (delivery reports, inbound messages). Not the customer API: no API key;
each carrier's own signature authenticates its requests."""

from django.urls import path

from messaging import carrier_views

urlpatterns = [
    path("<slug:name>/twilio/status", carrier_views.twilio_status, name="carrier-twilio-status"),
    path("<slug:name>/twilio/inbound", carrier_views.twilio_inbound, name="carrier-twilio-inbound"),
]
