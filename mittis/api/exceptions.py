"""The one exception the API raises on purpose. The handler in `errors.py` renders it."""

from rest_framework.exceptions import APIException


class ApiError(APIException):
    """A domain error with a stable code from the catalogue (`mittis.api.catalogue`).

    `message` defaults to the catalogue's text; `field` names the parameter at fault.
    """

    def __init__(self, code: str, message: str | None = None, *, field: str | None = None, headers=None):
        from mittis.api.catalogue import ERROR_CODES

        entry = ERROR_CODES[code]  # KeyError here means a code missing from the catalogue
        self.code = code
        self.field = field
        self.message = message or entry.message
        self.status_code = entry.status
        self.headers = headers or {}
        super().__init__(detail=self.message, code=code)
