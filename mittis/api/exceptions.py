"""`ApiError` is `mittis.errors.DomainError` under its former name, for code not yet switched to it
(messaging/services.py, being split into a package). Raise and catch `DomainError`; this module goes when
nothing imports it."""

from mittis.errors import DomainError as ApiError

__all__ = ["ApiError"]
