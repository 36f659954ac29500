"""Errors from the framework itself leave in the contract's shape, with a Request-Id."""

import ast
from pathlib import Path
import re

from django.conf import settings as django_settings
from django.test import Client
import pytest

from mittis.api.catalogue import ERROR_CODES
from mittis.errors import DomainError

ROOT = Path(__file__).resolve().parents[2]


def assert_error_shape(response, status, code, error_type):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert re.fullmatch(r"req_[A-Za-z0-9]{24}", response["Request-Id"])
    error = response.json()["error"]
    assert (error["code"], error["type"]) == (code, error_type)
    assert error["request_id"] == response["Request-Id"]
    assert error["doc_url"] == f"{django_settings.MITTIS_PUBLIC_URL}/docs/errors#{code}"
    assert code in ERROR_CODES
    return error


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/v1/messages/", "/v2/messages", "/favicon.ico"])
def test_an_unknown_url_is_a_404_in_the_error_shape(client, db, path):
    assert_error_shape(client.get(path), 404, "url_not_found", "not_found_error")


def test_a_wrong_method_is_a_405_listing_the_allowed_ones(api):
    response = api.delete("/v1/messages")

    assert_error_shape(response, 405, "method_not_allowed", "invalid_request_error")
    assert set(response["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_asking_for_xml_is_a_406(api):
    response = api.get("/v1/messages", HTTP_ACCEPT="application/xml")

    assert_error_shape(response, 406, "not_acceptable", "invalid_request_error")


@pytest.mark.parametrize("path", ["/v1/crash", "/plain-crash"])
def test_a_crash_is_a_500_in_the_error_shape_without_internals(settings, db, path):
    settings.ROOT_URLCONF = "tests.api.crashing_urls"
    client = Client(raise_request_exception=False)

    response = client.get(path)

    error = assert_error_shape(response, 500, "internal_error", "api_error")
    assert "boom" not in response.content.decode()
    assert error["field"] is None


def test_the_error_log_line_escapes_control_characters_in_the_path(settings, db, caplog):
    settings.ROOT_URLCONF = "tests.api.crashing_urls"

    Client(raise_request_exception=False).get("/v1/crash/a%00b%0Ac%1B")

    [line] = [record.getMessage() for record in caplog.records if record.name == "mittis.api.errors"]
    assert line == "Unhandled error in GET /v1/crash/a\\x00b\\nc\\x1b"


def test_every_response_has_a_request_id(client, db, api):
    ids = {client.get("/healthz")["Request-Id"], api.get("/v1/messages")["Request-Id"], client.get("/docs")["Request-Id"]}

    assert len(ids) == 3 and all(i.startswith("req_") for i in ids)


def test_every_catalogue_code_has_a_known_type_and_an_error_status():
    from mittis.api.catalogue import ERROR_TYPES

    for entry in ERROR_CODES.values():
        assert entry.type in ERROR_TYPES and 400 <= entry.status <= 599, entry


def test_a_domain_error_renders_as_its_catalogue_entry_with_an_absolute_doc_url(rf, settings):
    from mittis.api.errors import exception_handler

    settings.MITTIS_PUBLIC_URL = "https://sms.example.com"
    request = rf.get("/v1/messages")
    request.request_id = "req_1"
    response = exception_handler(DomainError("insufficient_funds", field="to"), {"request": request})

    assert response.status_code == 402
    assert response.data["error"] | {"errors": None} == {
        "type": "billing_error", "code": "insufficient_funds", "message": ERROR_CODES["insufficient_funds"].message,
        "field": "to", "doc_url": "https://sms.example.com/docs/errors#insufficient_funds",
        "request_id": "req_1", "errors": None}


def test_every_code_a_domain_error_is_raised_with_is_in_the_catalogue():
    """DomainError knows no catalogue (it is below the API); a code the catalogue lacks would be a 500."""
    raised = {}
    for path in [*ROOT.glob("mittis/**/*.py"), *ROOT.glob("messaging/**/*.py"), *ROOT.glob("billing/**/*.py"),
                 *ROOT.glob("webhooks/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DomainError"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                raised.setdefault(node.args[0].value, str(path.relative_to(ROOT)))

    assert len(raised) >= 10
    assert {code: path for code, path in raised.items() if code not in ERROR_CODES} == {}
