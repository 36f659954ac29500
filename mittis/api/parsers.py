"""The one request parser: JSON, refused cleanly (400 `invalid_json`) when too deep to parse."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class ApiJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:  # thousands of nested arrays: the JSON decoder gives up, and so do we
            raise ParseError("JSON parse error - the body is nested too deeply.")
