"""The API's content negotiation answers what DRF's would, for every Accept header: the common ones without
parsing them, the rest (406 included) by DRF's own."""

from django.http import Http404
import pytest
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from mittis.api.negotiation import ApiContentNegotiation
from mittis.api.renderers import VersionedJSONRenderer


def chosen(negotiation, renderers, *, accept: str | None, query: str = "", format_suffix: str | None = None):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/v1/messages{query}", **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, format_suffix)
    except (NotAcceptable, Http404) as refusal:
        return type(refusal)
    return type(renderer), media_type


ACCEPTS = [None, "*/*", "application/json", "", "application/json; indent=4", "application/*", "text/html",
           "text/html, */*;q=0.8", "application/json;q=0.5, text/plain", "*/*; charset=utf-8", "image/png"]
RENDERER_SETS = [[VersionedJSONRenderer()], [BrowsableAPIRenderer(), JSONRenderer()], [JSONRenderer()]]


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("renderers", RENDERER_SETS, ids=lambda rs: "+".join(type(r).__name__ for r in rs))
@pytest.mark.parametrize("query, format_suffix", [("", None), ("?format=json", None), ("?format=api", None),
                                                  ("?format=", None), ("", "json")])
def test_the_renderer_and_media_type_are_drfs(accept, renderers, query, format_suffix):
    ours = chosen(ApiContentNegotiation(), renderers, accept=accept, query=query, format_suffix=format_suffix)

    assert ours == chosen(DefaultContentNegotiation(), renderers, accept=accept, query=query,
                          format_suffix=format_suffix)


def test_the_api_answers_json_to_any_client_and_406_to_one_that_takes_none(api):
    for accept in [None, "*/*", "application/json"]:
        response = api.get("/v1/messages", **({} if accept is None else {"HTTP_ACCEPT": accept}))
        assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert api.get("/v1/messages", HTTP_ACCEPT="text/html").status_code == 406
