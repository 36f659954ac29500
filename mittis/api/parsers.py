"""The one request parser: JSON, refused cleanly (400 `invalid_json`) when too deep to parse, with a 400
naming the field when a string or key spells a lone surrogate, and brought to the newest shape from the
request's API version."""

import re

from rest_framework.exceptions import ErrorDetail, ParseError, ValidationError
from rest_framework.parsers import JSONParser

from mittis import versions


class ApiJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:  # thousands of nested arrays: the JSON decoder gives up, and so do we
            raise ParseError("JSON parse error - the body is nested too deeply.")
        _refuse_lone_surrogates(data)
        return _upgraded(data, (parser_context or {}).get("request"))


def _upgraded(data, request):
    """The body in the newest shape, from its request's version (`request.api_version`, mittis.api.versioning)."""
    version = getattr(request, "api_version", None)
    if version is None or version == versions.current():
        return data
    return versions.upgrade(data, operation=operation(request), version=version)


_CONVERTER = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


def operation(request) -> str:
    """The request's operation as the schema names it: `"POST /v1/messages/{id}/cancel"`."""
    route = request.resolver_match.route if request.resolver_match is not None else request.path.lstrip("/")
    return f"{request.method} /" + _CONVERTER.sub(r"{\1}", route)


def _refuse_lone_surrogates(data) -> None:
    """JSON can spell half of a UTF-16 pair alone (`"\\ud800"`), which is no character: no UTF-8 holds it, so
    PostgreSQL, the renderer and the logs all fail on it (a 500). Refused here once, for every string and key
    of every endpoint, in the words DRF's CharField uses for its own fields (`parameter_invalid`)."""
    pending = [(data, ())]
    while pending:  # a loop, not recursion: the decoder allows nesting deeper than our stack would
        item, path = pending.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if _lone_surrogate(key):
                    _refuse(path + (key,), _lone_surrogate(key))
                pending.append((value, path + (key,)))
        elif isinstance(item, list):
            pending.extend((value, path + (index,)) for index, value in enumerate(item))
        elif isinstance(item, str) and _lone_surrogate(item):
            _refuse(path, _lone_surrogate(item))


def _lone_surrogate(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return text[error.start]
    return None


def _refuse(path: tuple, surrogate: str):
    detail = ErrorDetail(f"Surrogate characters are not allowed: U+{ord(surrogate):04X}.",
                         code="surrogate_characters_not_allowed")
    if not path:
        raise ValidationError([detail])
    field = ""
    for part in path:  # as errors.py writes field paths; a key's own surrogate shown as its escape
        if isinstance(part, int):
            field += f"[{part}]"
        else:
            part = part.encode("utf-8", "backslashreplace").decode("utf-8") or "''"
            field += f".{part}" if field else part
    raise ValidationError({field: [detail]})
