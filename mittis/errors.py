"""The one exception the domain raises on purpose, in the API's vocabulary but knowing nothing of HTTP.

Services and selectors raise `DomainError` with a stable code from the error catalogue
(`mittis/api/catalogue.py`, which gives each code its HTTP status, type and default message); the API's one
exception handler (`mittis/api/errors.py`) renders it in the contract's error shape. Plain Python: no
Django, no DRF, so a task, a command or the admin can raise and catch it as well as a view.
"""


class DomainError(Exception):
    """A refusal with a stable `code`. `message` (for people) defaults to the catalogue's text for the code;
    `field` names the parameter at fault (`to`, `metadata.order_id`), or None."""

    def __init__(self, code: str, message: str | None = None, *, field: str | None = None):
        super().__init__(message or code)
        self.code = code
        self.message = message
        self.field = field
