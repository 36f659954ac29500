"""Every endpoint answers malformed, oversized and hostile input with a 4xx in the error shape: never a 500."""

import pytest

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
