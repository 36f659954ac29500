"""The API's content negotiation (REST_FRAMEWORK's DEFAULT_CONTENT_NEGOTIATION_CLASS): DRF's, with the answer for
what nearly every client sends given at once."""

from rest_framework.negotiation import DefaultContentNegotiation

# No Accept header, or one of these: DRF's answer is the first renderer (JSON) in its own media type. Parsing the
# header and ranking media types for them was a twentieth of a retrieve's Python.
_ANY = {None, "*/*"}
JSON = "application/json"


class ApiContentNegotiation(DefaultContentNegotiation):
    """DefaultContentNegotiation; for a request without `?format=` whose Accept is absent, `*/*` or
    `application/json` (and a first renderer of that type), its answer without its parsing. Anything else, a 406
    included, is DRF's own (tests/api/test_negotiation.py holds the two equal)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        accept = request.META.get("HTTP_ACCEPT")
        if renderers and (accept in _ANY or accept == JSON == renderers[0].media_type) and not (
                format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
