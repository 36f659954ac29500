"""Every endpoint answers malformed, oversized and hostile input with a 4xx in the error shape: never a 500."""

import pytest

from mittis.api.schema_compat import committed_schema

POSTS = ["/v1/messages", "/v1/messages/preview", "/v1/webhook_endpoints", "/v1/exports",
         "/v1/events/evt_nope/redeliver", "/v1/webhook_endpoints/we_nope/recover", "/v1/messages/msg_nope/cancel",
         "/v1/messages/msg_nope/redact", "/v1/webhook_endpoints/we_nope/rotate_secret", "/v1/callback_secret/rotate"]
BODIES = ['[]', '"a string"', '42', 'null', '{"from": {"$gt": ""}, "to": ["+1"], "body": 7}', '{not json',
          '{"url": "javascript:alert(1)", "type": "messages\\u0000", "start": "9999-99-99"}',
          '{"enabled_events": "*", "since": 12, "endpoint": ["we_1"]}']
GETS = ["/v1/messages?limit=abc", "/v1/messages?limit=1000", "/v1/messages?created_gte=yesterday",
        "/v1/messages?starting_after=msg_nope", "/v1/events?type=bogus", "/v1/events?limit=0",
        "/v1/exports?ending_before=%00", "/v1/opt_outs?limit=-1", "/v1/webhook_endpoints?starting_after=we_x",
        "/v1/webhook_endpoints/we_nope/deliveries?limit=x", "/v1/exports/exp_nope/download",
        "/v1/usage?start=x&end=y", "/v1/ledger?bogus=1", "/v1/events/evt_%27%3B--"]


def assert_clean_4xx(response):
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["code"] and error["message"] and error["request_id"] == response["Request-Id"]


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("body", BODIES)
def test_hostile_bodies_get_a_4xx(api, path, body):
    assert_clean_4xx(api.post(path, data=body, content_type="application/json"))


@pytest.mark.parametrize("path", POSTS)
def test_an_oversized_body_is_413_unless_the_object_is_already_unknown(api, path):
    response = api.post(path, data='{"body": "' + "x" * 3_000_000 + '"}', content_type="application/json")

    assert_clean_4xx(response)
    expected = "resource_missing" if "_nope" in path else "request_too_large"
    assert response.json()["error"]["code"] == expected


@pytest.mark.parametrize("path", GETS)
def test_hostile_queries_get_a_4xx(api, path):
    assert_clean_4xx(api.get(path))


@pytest.mark.parametrize("path", ["/carriers/nope/twilio/status", "/carriers/nope/twilio/inbound"])
def test_carrier_callbacks_refuse_strangers(client, db, path):
    response = client.post(path, data={"MessageSid": "SM1", "MessageStatus": "delivered"})

    assert 400 <= response.status_code < 500


# --- Hand-written cases the generator misses ------------------------------------------------------
ONE_MB = 1024 * 1024


@pytest.mark.parametrize("path", POSTS)
def test_a_body_over_one_megabyte_is_413_in_the_error_shape(api, path):
    body = '{"body": "' + "x" * ONE_MB + '"}'

    response = api.post(path, data=body, content_type="application/json")

    assert_clean_4xx(response)
    assert response.status_code in (404, 413)
    if response.status_code == 413:
        assert response.json()["error"]["code"] == "request_too_large"


def test_a_body_just_under_one_megabyte_is_read_and_its_long_text_refused(api):
    body = '{"from": "+18045550142", "to": "+18045550199", "body": "' + "x" * (ONE_MB - 100) + '"}'

    response = api.post("/v1/messages", data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "body"


@pytest.mark.parametrize("depth", [50, 5_000, 200_000])
def test_deeply_nested_json_is_refused(api, depth):
    body = '{"from": "+18045550142", "to": "+18045550199", "body": "hi", "metadata": {"a": ' + \
        "[" * depth + "]" * depth + "}}"

    assert_clean_4xx(api.post("/v1/messages", data=body, content_type="application/json"))


@pytest.mark.parametrize("raw", [
    b'{"from": "+18045550142", "to": "+18045550199", "body": "\xff\xfe\xfd"}',  # invalid UTF-8
    b'{"from": "+18045550142", "to": "+18045550199", "body": "\xed\xa0\x80"}',  # an encoded lone surrogate
    b'{"from": "+18045550142", "to": "+18045550199", "body": "a\x00b"}',  # a raw NUL inside a string
    b'{"from": "+18045550142", "to": "+18045550199", "body": "a\\u0000b"}',  # an escaped NUL
    b'{"from": "+18045550142", "to": "+18045550199", "body": "\\ud800"}',  # an escaped lone surrogate
    b'\x00{"body": "x"}',
    b'{"from": "+18045550142", "to": "+18045550199", "body": "hi", "metadata": {"k\\u0000": "v"}}',
])
def test_invalid_utf8_and_nul_bytes_are_refused(api, raw):
    response = api.generic("POST", "/v1/messages", raw, content_type="application/json")

    assert_clean_4xx(response)
    assert not response.json()["error"]["code"].startswith("internal")


@pytest.mark.parametrize("query", ["limit=10abc", "limit=1e1", "limit=0x10", "limit=1_0", "limit=%EF%BC%91",
                                   "limit=10.0", "limit=NaN", "limit=Infinity", "limit=9" * 400])
def test_numbers_with_letters_in_a_query_are_refused(api, query):
    response = api.get("/v1/messages?" + query)

    assert_clean_4xx(response)
    assert response.json()["error"]["field"] == "limit"


@pytest.mark.parametrize("value", ["12e3", "0x10", "1_000", "3600s", "NaN", "Infinity", "１２０"])
def test_numbers_with_letters_in_a_body_are_refused(api, value):
    response = api.post("/v1/messages", {"from": "+18045550142", "to": "+18045550199", "body": "hi",
                                         "validity_period": value}, format="json")

    assert_clean_4xx(response)
    assert response.json()["error"]["field"] == "validity_period"


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: session=evil", "a\nX-Injected: 1", "a\rLocation: //evil.example"])
def test_header_injection_in_metadata_stays_data_and_never_becomes_a_header(api, value):
    response = api.post("/v1/messages", {"from": "+18045550142", "to": "+18045550199", "body": "hi",
                                         "metadata": {"order": value}}, format="json")

    assert response.status_code == 201
    assert response.json()["metadata"] == {"order": value}
    for header in ("Set-Cookie", "X-Injected", "Location"):
        assert header not in response
    shown = api.get(f"/v1/messages/{response.json()['id']}")
    assert shown.json()["metadata"] == {"order": value} and "Set-Cookie" not in shown


@pytest.mark.parametrize("key, code", [
    ("k" * 256, "idempotency_key_invalid"),
    ("", "idempotency_key_invalid"),
    ("clé-unicode", "idempotency_key_invalid"),
    ("tab\there", "idempotency_key_invalid"),
])
def test_idempotency_key_abuse_is_refused_before_anything_is_sent(api, key, code):
    response = api.post("/v1/messages", {"from": "+18045550142", "to": "+18045550199", "body": "hi"},
                        format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert_clean_4xx(response)
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, "Idempotency-Key")
    assert api.get("/v1/messages").json()["data"] == []


def test_one_idempotency_key_reused_across_endpoints_and_bodies_never_sends_twice(api):
    first = api.post("/v1/messages", {"from": "+18045550142", "to": "+18045550199", "body": "hi"},
                     format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    other_body = api.post("/v1/messages", {"from": "+18045550142", "to": "+18045550199", "body": "bye"},
                          format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    other_path = api.post("/v1/messages/preview", {"from": "+18045550142", "to": "+18045550199", "body": "hi"},
                          format="json", HTTP_IDEMPOTENCY_KEY="order-1")

    assert first.status_code == 201
    assert other_body.status_code == 422 and other_body.json()["error"]["code"] == "idempotency_key_reused"
    assert other_path.status_code == 422 and other_path.json()["error"]["code"] == "idempotency_key_reused"
    assert len(api.get("/v1/messages").json()["data"]) == 1


# --- NUL bytes and lone surrogates -----------------------------------------------------------------
ID_OPERATIONS = [(method.upper(), path) for path, operations in committed_schema()["paths"].items() if "{id}" in path
                 for method in operations if method in ("get", "post", "patch", "delete")]


def test_every_id_operation_of_the_schema_is_listed():
    assert len(ID_OPERATIONS) == 15


@pytest.mark.parametrize("method, path", ID_OPERATIONS)
@pytest.mark.parametrize("object_id", ["%00", "msg_%00", "a%00b%0A"])
def test_a_nul_byte_in_a_path_id_is_a_404_and_reaches_no_log_raw(api, caplog, method, path, object_id):
    response = api.generic(method, path.replace("{id}", object_id), "{}", content_type="application/json",
                           HTTP_IDEMPOTENCY_KEY="nul-in-the-path")

    assert_clean_4xx(response)
    assert response.status_code == 404
    assert not any("\x00" in record.getMessage() or "\n" in record.getMessage() for record in caplog.records)


SURROGATE = "\\ud800"  # as JSON spells it: half of a UTF-16 pair, alone
SEND = '"from": "+18045550142", "to": "+18045550199"'


@pytest.mark.parametrize("path, body, field", [
    ("/v1/messages", f'{{{SEND}, "body": "hi", "metadata": {{"k": "{SURROGATE}"}}}}', "metadata.k"),
    ("/v1/messages", f'{{{SEND}, "body": "hi", "metadata": {{"k{SURROGATE}": "v"}}}}', "metadata.k\\ud800"),
    ("/v1/messages", f'{{{SEND}, "body": "a{SURROGATE}b"}}', "body"),
    ("/v1/messages", f'{{{SEND}, "body": "hi", "status_callback": "https://x.example.com/{SURROGATE}"}}',
     "status_callback"),
    ("/v1/messages", '{"\\udfff": 1}', "\\udfff"),
    ("/v1/messages", f'"{SURROGATE}"', None),
    ("/v1/messages/preview", f'{{{SEND}, "body": "{SURROGATE}"}}', "body"),
    ("/v1/webhook_endpoints", f'{{"url": "https://hooks.example.com", "description": "{SURROGATE}"}}', "description"),
    ("/v1/webhook_endpoints", f'{{"url": "https://hooks.example.com", "enabled_events": ["{SURROGATE}"]}}',
     "enabled_events[0]"),
    ("/v1/exports", f'{{"type": "messages", "filters": [{{"x": ["{SURROGATE}"]}}]}}', "filters[0].x[0]"),
])
def test_a_lone_surrogate_in_json_is_a_400_naming_where(api, public_dns, path, body, field):
    response = api.generic("POST", path, body.encode(), content_type="application/json",
                           HTTP_IDEMPOTENCY_KEY="surrogate")

    assert_clean_4xx(response)
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["field"]) == (400, "parameter_invalid", field)
    assert "U+D800" in error["message"] or "U+DFFF" in error["message"]


def test_a_pair_of_surrogates_is_one_character_and_accepted(api):
    response = api.generic("POST", "/v1/messages", f'{{{SEND}, "body": "\\ud83d\\ude00"}}'.encode(),
                           content_type="application/json")

    assert response.status_code == 201 and response.json()["body"] == "\U0001f600"


@pytest.mark.parametrize("query, field", [
    ("to=%ED%A0%80", "to"), ("status=x%ED%B0%80", "status"), ("starting_after=msg_%ED%A0%80", "starting_after"),
    ("limit=%ED%A0%80", "limit"), ("%ED%A0%80=1", "\ufffd\ufffd\ufffd"),
])
def test_a_lone_surrogate_in_a_query_is_a_400(api, query, field):
    """A URL holds bytes: a lone surrogate is its three bytes, which are no UTF-8."""
    response = api.get(f"/v1/messages?{query}")

    assert_clean_4xx(response)
    assert (response.status_code, response.json()["error"]["field"]) == (400, field)


@pytest.mark.parametrize("value", ["\ud800", "\xed\xa0\x80", "mk_test_\x00", "\x00"])
def test_nul_bytes_and_lone_surrogates_in_headers_are_a_4xx_or_ignored(anonymous, db, value):
    """A WSGI server hands headers over as Latin-1 (a surrogate as its bytes, `\\xed\\xa0\\x80`); the test client
    can hand over anything."""
    unknown_key = anonymous.get("/v1/messages", HTTP_AUTHORIZATION=f"Bearer {value}")
    keyed = anonymous.post("/v1/messages", {}, format="json", HTTP_AUTHORIZATION="Bearer mk_test_nope",
                           HTTP_IDEMPOTENCY_KEY=value)
    ignored = anonymous.get("/healthz", HTTP_X_HOSTILE=value)

    assert_clean_4xx(unknown_key)
    assert unknown_key.json()["error"]["code"] == "invalid_api_key"
    assert_clean_4xx(keyed)
    assert ignored.status_code == 200


def test_a_lone_surrogate_in_an_idempotency_key_is_refused_before_anything_is_sent(api):
    response = api.post("/v1/messages", {"from": "+18045550142", "to": "+18045550199", "body": "hi"}, format="json",
                        HTTP_IDEMPOTENCY_KEY="\ud800")

    assert_clean_4xx(response)
    assert response.json()["error"]["code"] == "idempotency_key_invalid"
