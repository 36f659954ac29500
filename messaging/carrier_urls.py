"""Where carriers call us back (delivery reports, inbound messages). Not the customer API: no API key;
each carrier's own signature authenticates its requests."""

urlpatterns = []
