"""GET /v1/messages/{id}, the filtered paginated list, and a message's events; tenants stay apart."""

from django.conf import settings as django_settings
import pytest
from rest_framework.test import APIClient

from messaging import statuses
from messaging.models import Message
from tests.factories import AccountFactory, SenderFactory, api_key_for


def client_for(account, *, livemode=False):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=livemode)}")
    return client


def test_get_returns_what_the_post_returned(api, send):
    created = send().json()

    response = api.get(f"/v1/messages/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


def test_another_accounts_key_gets_404_for_my_message(send, db):
    created = send().json()
    intruder = AccountFactory(name="Other")
    SenderFactory(account=intruder)

    for path in [f"/v1/messages/{created['id']}", f"/v1/messages/{created['id']}/events"]:
        response = client_for(intruder).get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "resource_missing"
    assert client_for(intruder).get("/v1/messages").json()["data"] == []


def test_a_live_key_does_not_see_test_messages(send, account):
    created = send().json()

    live = client_for(account, livemode=True)

    assert live.get(f"/v1/messages/{created['id']}").status_code == 404
    assert live.get("/v1/messages").json()["data"] == []


def test_an_unknown_id_gets_404_in_the_error_shape(api):
    response = api.get("/v1/messages/msg_doesnotexist")

    assert response.status_code == 404
    assert response.json()["error"] | {"request_id": None, "message": None} == {
        "type": "not_found_error", "code": "resource_missing", "field": "id", "message": None,
        "doc_url": f"{django_settings.MITTIS_PUBLIC_URL}/docs/errors#resource_missing", "request_id": None,
        "errors": response.json()["error"]["errors"],
    }


def test_the_list_is_newest_first_and_pages_with_cursors(api, send):
    ids = [send(body=f"message {n}").json()["id"] for n in range(5)]
    newest_first = ids[::-1]

    first = api.get("/v1/messages?limit=2").json()
    second = api.get(f"/v1/messages?limit=2&starting_after={first['data'][-1]['id']}").json()
    last = api.get(f"/v1/messages?limit=2&starting_after={second['data'][-1]['id']}").json()
    back = api.get(f"/v1/messages?limit=2&ending_before={last['data'][0]['id']}").json()

    assert (first["object"], first["url"]) == ("list", "/v1/messages")
    assert [m["id"] for m in first["data"]] == newest_first[:2] and first["has_more"] is True
    assert [m["id"] for m in second["data"]] == newest_first[2:4] and second["has_more"] is True
    assert [m["id"] for m in last["data"]] == newest_first[4:] and last["has_more"] is False
    assert [m["id"] for m in back["data"]] == newest_first[2:4] and back["has_more"] is True


def test_the_list_filters(api, send, account):
    account.senders.create(value="Acme", kind="alphanumeric")
    to_a = send(to="+18045550111").json()
    from_acme = send(**{"from": "Acme"}).json()
    Message.objects.filter(public_id=to_a["id"]).update(status=statuses.DELIVERED)

    def ids(query):
        response = api.get(f"/v1/messages?{query}")
        assert response.status_code == 200, response.json()
        return [m["id"] for m in response.json()["data"]]

    assert ids("status=delivered") == [to_a["id"]]
    assert ids("to=%2B18045550111") == [to_a["id"]]
    assert ids("to=+18045550111") == [to_a["id"]]  # an unencoded + arrives as a space
    assert ids("from=Acme") == [from_acme["id"]]
    assert ids("direction=inbound") == []
    assert ids("created_gte=2000-01-01T00:00:00Z") == [from_acme["id"], to_a["id"]]
    assert ids("created_lt=2000-01-01T00:00:00Z") == []


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"),
    ("limit=101", "limit"),
    ("limit=ten", "limit"),
    ("status=lost", "status"),
    ("created_gte=yesterday", "created_gte"),
    ("starting_after=msg_unknown", "starting_after"),
    ("starting_after=a&ending_before=b", "ending_before"),
    ("colour=blue", "colour"),
])
def test_bad_list_parameters_get_400_naming_the_parameter(api, query, field):
    response = api.get(f"/v1/messages?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_listing_costs_the_same_queries_for_one_message_or_many(api, send, django_assert_max_num_queries):
    for n in range(30):
        send(body=f"message {n}")

    with django_assert_max_num_queries(4):  # key lookup, last_used_at, page (+1 spare)
        response = api.get("/v1/messages?limit=100")

    assert len(response.json()["data"]) == 30


def test_events_read_as_a_timeline(api, send):
    from messaging.services import message_send
    from messaging.models import Message as M

    created = send().json()
    message_send(message_id=M.objects.get(public_id=created["id"]).pk)

    response = api.get(f"/v1/messages/{created['id']}/events")

    assert response.status_code == 200
    events = response.json()["data"]
    assert [(e["object"], e["type"], e["sequence"], e["data"]["status"]) for e in events] == [
        ("event", "message.queued", 1, "queued"), ("event", "message.sent", 2, "sent")]
    assert all(e["id"].startswith("evt_") and e["livemode"] is False for e in events)
    assert events[0]["data"]["id"] == created["id"]


def test_a_listed_message_is_the_message_its_own_url_answers_attempts_and_all(api, send):
    from django.utils import timezone

    from messaging.models import SendAttempt

    sent, plain = send().json()["id"], send(body="no attempts").json()["id"]
    message = Message.objects.get(public_id=sent)
    for number, outcome in [(1, "temporary_error"), (2, "accepted")]:
        SendAttempt.objects.create(message=message, number=number, carrier="sandbox", started_at=timezone.now(),
                                   latency_ms=12, outcome=outcome, carrier_message_id="sbx_1" if number == 2 else "",
                                   raw_code="503" if number == 1 else "")

    listed = {m["id"]: m for m in api.get("/v1/messages").json()["data"]}

    assert listed[sent] == api.get(f"/v1/messages/{sent}").json() and len(listed[sent]["attempts"]) == 2
    assert listed[plain] == api.get(f"/v1/messages/{plain}").json() and listed[plain]["attempts"] == []
