from django.conf import settings

from mittis.accounts.authentication import api_key_for_request
from mittis.api import ratelimit
from mittis.api.errors import RETRY_AFTER_UNAVAILABLE, error_response
from mittis.ids import new_public_id


class RequestIdMiddleware:
    """Give every request a `req_…` id: in the `Request-Id` header, in error bodies and in logs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = new_public_id("req")
        response = self.get_response(request)
        if "Request-Id" not in response:  # an idempotent replay keeps the original's id
            response["Request-Id"] = request.request_id
        return response


class RateLimitMiddleware:
    """Count the request against its API key (or its address without one) before any work is done,
    and put the limit that applied on the response, whatever the response is."""

    # The staff console, carrier callbacks and the benchmark's reference endpoints are not the API.
    EXEMPT = ("/admin/", "/static/", "/carriers/", "/bench/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(self.EXEMPT):
            return self.get_response(request)
        _presented, api_key = api_key_for_request(request)
        if api_key is not None:
            identity, policy = f"key:{api_key.pk}", ratelimit.policy_for(api_key.account)
        else:
            identity, policy = f"addr:{ratelimit.client_address(request)}", ratelimit.policy_for(None)
        decision = ratelimit.hit(identity, policy)
        if decision.unavailable and not settings.MITTIS_RATE_LIMIT_FAIL_OPEN:
            response = error_response(request, "service_unavailable")
            response["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
        elif decision.allowed:
            response = self.get_response(request)
        else:
            per = "API key" if api_key is not None else "client address"
            response = error_response(
                request, "rate_limit_exceeded",
                f"Too many requests: {policy.limit} per {policy.window} s for this {per}. "
                f"Retry after {decision.reset_in} s.")
            response["Retry-After"] = str(decision.reset_in)
        for name, value in decision.headers().items():
            response[name] = value
        return response
