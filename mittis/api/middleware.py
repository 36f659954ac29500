from mittis.api.ids import new_public_id


class RequestIdMiddleware:
    """Give every request a `req_…` id: in the `Request-Id` header, in error bodies and in logs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = new_public_id("req")
        response = self.get_response(request)
        response["Request-Id"] = request.request_id
        return response
