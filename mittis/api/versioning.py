"""Dated versions at the API's edge (mittis/versions.py holds the versions and their changes).

Each /v1 request is answered in one version: its `Mittis-Version` header's, else its account's pin, else (no
valid key) the current one. This middleware picks it (`request.api_version`) and names it in every answer's
`Mittis-Version`, errors and refusals before authentication included; the API's one renderer
(`mittis.api.renderers`) walks every answer back to it, and its one parser (`mittis.api.parsers`) walks a request
body forward from it. The views build only the newest shape.
"""

from mittis import versions
from mittis.accounts.authentication import api_key_for_request
from mittis.api.errors import error_response

HEADER = "Mittis-Version"


class ApiVersionMiddleware:
    """Outside the rate limiter, so that its 429 names a version too; an unknown version is refused in
    `process_view`, once the limiter has counted the request (and put its headers on the 400)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/v1/"):
            return self.get_response(request)
        asked = request.headers.get(HEADER)
        request.api_version_refused = None
        if asked is None:
            _presented, api_key = api_key_for_request(request)  # the limiter's lookup: no query of its own
            request.api_version = api_key.account.api_version if api_key is not None else versions.current()
        elif versions.is_known(asked):
            request.api_version = asked
        else:
            request.api_version, request.api_version_refused = versions.current(), asked
        response = self.get_response(request)
        if HEADER not in response:  # an idempotent replay names the version its stored answer was rendered in
            response[HEADER] = request.api_version
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        refused = getattr(request, "api_version_refused", None)
        if refused is not None:
            return error_response(request, "api_version_invalid", versions.problem(refused, name=HEADER),
                                  field=HEADER)
        return None
