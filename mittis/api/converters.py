"""Path converters: an object id in a URL is held to the shape of an id before any view or query sees it."""


class PublicIdConverter:
    """`<public_id:id>`: a type prefix, `_` and base62 (`mittis.ids`). Anything else no id holds (a NUL byte,
    which PostgreSQL refuses in text, made the lookup a 500) is then no URL of ours: a 404 in the error shape."""

    regex = "[A-Za-z0-9_]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
