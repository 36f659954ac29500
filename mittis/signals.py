"""Signals between the apps and the platform under them, which must not import the apps."""

from django.dispatch import Signal

# An object's content was redacted (a message's body): whoever kept a copy of it removes it there too.
# Arguments: account_id, livemode, object_id (its public id), created_at (no copy kept is older),
# changes (the fields to overwrite in a stored copy of the object's JSON, e.g. {"body": None, ...}).
object_redacted = Signal()
