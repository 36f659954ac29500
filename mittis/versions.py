"""Dated API versions, Stripe style: the registry of every breaking change, and the transforms that carry an
object from the newest shape back to an older version, and a request from an older version forward.

The code builds only the newest shape. A reader pinned to an older version (a request's `Mittis-Version`
header, else its account's `api_version`; a webhook endpoint's `api_version`) gets it walked back through every
change published after that version, newest first; a request body it sends is walked forward through the same
changes, oldest first. Each change is a `VersionChange`: the date of the first version that has it, a sentence
for the changelog (/docs/changelog), and its transforms, keyed by object type and by operation.

Today there is one version, FIRST_VERSION, and no change. A breaking change is added to CHANGES with a new
date, and that date becomes the current version: new accounts are pinned to it, everyone else keeps theirs.
What counts as breaking is docs/versioning.md's to say.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import re

from django.core.exceptions import ValidationError

# The API as it was when versions began: every account and endpoint that existed then is pinned to it.
FIRST_VERSION = "2026-12-07"
FORMAT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The customer's own keys and values: never read as objects, whatever they hold (`{"object": "message"}`).
FREE_FORM = frozenset({"metadata"})


@dataclass(frozen=True)
class VersionChange:
    """One breaking change. `downgrades`: object type (an object's `"object"`) → a function taking one such
    object in this version's shape to the shape before it. `upgrades`: operation (`"POST /v1/messages"`,
    the schema's path) → a function taking a request body in the shape before to this version's shape.
    Each function returns a new dict and leaves its argument alone."""

    version: str
    description: str  # Markdown, one or two sentences, as a client reads the changelog
    downgrades: Mapping[str, Callable[[dict], dict]] = field(default_factory=dict)
    upgrades: Mapping[str, Callable[[dict], dict]] = field(default_factory=dict)


class Registry:
    """The versions, oldest first, and the changes each brought."""

    def __init__(self, changes: list[VersionChange], *, first: str = FIRST_VERSION):
        for change in changes:
            if not FORMAT.fullmatch(change.version) or change.version <= first:
                raise ValueError(f"A change's version is a date after {first}, written YYYY-MM-DD: {change.version!r}")
        self.changes = sorted(changes, key=lambda change: change.version)
        self.versions = (first, *sorted({change.version for change in changes}))
        self.current = self.versions[-1]

    def after(self, version: str) -> list[VersionChange]:
        """The changes a reader of `version` has not seen, oldest first."""
        return [change for change in self.changes if change.version > version]


# Newest last. None yet: 2026-12-07 is the only version.
CHANGES: list[VersionChange] = []
_registry = Registry(CHANGES)


def current() -> str:
    """The newest version: the shape the code builds, and new accounts' pin."""
    return _registry.current


def known() -> tuple[str, ...]:
    """Every version a client may ask for, oldest first."""
    return _registry.versions


def history() -> list[tuple[str, list[VersionChange]]]:
    """(version, the changes it brought), newest first: the changelog."""
    return [(version, [change for change in _registry.changes if change.version == version])
            for version in reversed(_registry.versions)]


def is_known(value: str) -> bool:
    return value in _registry.versions


def problem(value: str, *, name: str) -> str | None:
    """Why `value`, given as `name`, is not a version (a message for the client), or None when it is one."""
    if not FORMAT.fullmatch(value):
        return f"{name} must be a date written YYYY-MM-DD, like {current()}."
    if not is_known(value):
        return (f"{name} {value} is not a version of the Mittis API. The versions are "
                f"{', '.join(reversed(_registry.versions))}; see /docs/changelog.")
    return None


def validate(value: str) -> None:
    """A model field's validator (Account.api_version): only a known version may be stored."""
    if (found := problem(value, name="The version")) is not None:
        raise ValidationError(found, code="api_version_invalid")


def downgrade(data, version: str):
    """`data` (an object, a list of them, anything holding them) in `version`'s shape. The data itself when
    `version` is current: nothing is walked or copied."""
    for change in reversed(_registry.after(version)):
        if change.downgrades:
            data = _walk(data, change.downgrades)
    return data


def upgrade(body, *, operation: str, version: str):
    """A request body sent to `operation` (`"POST /v1/messages"`) in `version`'s shape, in the newest shape."""
    for change in _registry.after(version):
        function = change.upgrades.get(operation)
        if function is not None and isinstance(body, dict):
            body = function(body)
    return body


def _walk(value, downgrades: Mapping[str, Callable[[dict], dict]]):
    """A copy of `value` with every object of a type in `downgrades` transformed, inner objects first (an
    event's `data`, a list's items)."""
    if isinstance(value, list):
        return [_walk(item, downgrades) for item in value]
    if isinstance(value, dict):
        value = {key: item if key in FREE_FORM else _walk(item, downgrades) for key, item in value.items()}
        kind = value.get("object")
        function = downgrades.get(kind) if isinstance(kind, str) else None
        return function(value) if function is not None else value
    return value
