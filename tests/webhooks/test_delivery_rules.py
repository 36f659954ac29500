"""How one delivery attempt goes, against a real receiver: what counts as success, what is retried and
when, what disables an endpoint, and what is never done (redirects, private addresses)."""

from datetime import timedelta

from django.utils import timezone
import pytest
from standardwebhooks import Webhook

from webhooks.models import Delivery, DeliveryAttempt, WebhookEndpoint
from webhooks.services import deliveries_sweep, delivery_attempt
from tests.webhooks.conftest import IPV6_AROUND_PRIVATE_IPV4


def attempt_due() -> list[DeliveryAttempt]:
    """Make the attempts that are due now, as the task would (the broker's part is tested elsewhere)."""
    made = []
    for delivery in Delivery.objects.filter(status=Delivery.PENDING, next_attempt_at__lte=timezone.now()):
        attempt = delivery_attempt(delivery_id=delivery.pk)
        if attempt is not None:
            made.append(attempt)
    return made


def make_due():
    Delivery.objects.filter(status=Delivery.PENDING).update(next_attempt_at=timezone.now())


@pytest.fixture
def queued_only(api, endpoint):
    api.patch(f"/v1/webhook_endpoints/{endpoint[0]}", {"enabled_events": ["message.queued"]}, format="json")
    return endpoint


def test_a_2xx_is_success_and_nothing_more_is_sent(send, receiver, queued_only, fast_retries):
    receiver.script = [(204, {})]
    send()

    [attempt] = attempt_due()

    assert attempt.succeeded and attempt.response_status == 204 and attempt.next_attempt_at is None
    make_due()
    assert attempt_due() == [] and len(receiver.requests) == 1


def test_a_failure_is_retried_on_the_schedule_with_jitter(send, receiver, queued_only, settings):
    settings.MITTIS_WEBHOOK_RETRY_SCHEDULE = [5, 300, 1800]
    receiver.default_status = 500
    send()

    delays = []
    for _ in range(4):
        [attempt] = attempt_due()
        if attempt.next_attempt_at:
            delays.append((attempt.next_attempt_at - attempt.attempted_at).total_seconds())
        make_due()

    assert len(delays) == 3
    for delay, planned in zip(delays, [5, 300, 1800]):
        assert planned * 0.9 - 1 <= delay <= planned * 1.1 + 1
    assert Delivery.objects.get().status == Delivery.FAILED  # four attempts: the schedule is spent
    assert DeliveryAttempt.objects.count() == 4 and attempt_due() == []


def test_retry_after_is_honoured(send, receiver, queued_only, fast_retries):
    receiver.script = [(503, {"Retry-After": "120"})]
    send()

    [attempt] = attempt_due()

    assert attempt.next_attempt_at - attempt.attempted_at >= timedelta(seconds=119)
    assert attempt_due() == []  # not before it said


def test_410_gone_disables_the_endpoint_and_stops(send, receiver, queued_only, api, fast_retries):
    receiver.script = [(410, {})]
    send()

    [attempt] = attempt_due()

    endpoint = api.get(f"/v1/webhook_endpoints/{queued_only[0]}").json()
    assert (endpoint["status"], endpoint["disabled_reason"]) == ("disabled", "The endpoint answered 410 Gone.")
    assert Delivery.objects.get().status == Delivery.FAILED
    send()
    assert Delivery.objects.count() == 1  # a disabled endpoint gets no new events


def test_an_endpoint_failing_every_delivery_for_five_days_is_disabled(send, receiver, queued_only, fast_retries):
    receiver.default_status = 500
    send()
    attempt_due()
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.failing_since is not None and endpoint.status == "enabled"

    WebhookEndpoint.objects.update(failing_since=timezone.now() - timedelta(days=5, minutes=1))
    make_due()
    attempt_due()

    endpoint.refresh_from_db()
    assert endpoint.status == "disabled" and "5 days" in endpoint.disabled_reason


def test_a_success_forgets_earlier_failures(send, receiver, queued_only, fast_retries):
    receiver.script = [(500, {})]
    send()
    attempt_due()
    make_due()
    attempt_due()

    assert WebhookEndpoint.objects.get().failing_since is None


def test_redirects_are_not_followed(send, receiver, queued_only, fast_retries):
    receiver.script = [(302, {"Location": receiver.url + "/elsewhere"})]
    send()

    [attempt] = attempt_due()

    assert not attempt.succeeded and attempt.response_status == 302 and attempt.next_attempt_at is not None
    assert [r.path for r in receiver.requests] == ["/hooks"]


def test_a_slow_receiver_times_out_and_is_retried(send, receiver, queued_only, fast_retries, settings):
    settings.MITTIS_WEBHOOK_TIMEOUT = 0.3
    receiver.delay = 1.0
    send()

    [attempt] = attempt_due()

    assert not attempt.succeeded and attempt.response_status is None
    assert attempt.error == "Timed out after 0.3 s." and attempt.next_attempt_at is not None


def test_a_refused_connection_is_recorded_and_retried(api, send, receiver, fast_retries):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    api.post("/v1/webhook_endpoints", {"url": f"http://127.0.0.1:{closed_port}/x",
                                       "enabled_events": ["message.queued"]}, format="json")
    send()

    [attempt] = attempt_due()

    assert attempt.response_status is None and attempt.error == "Connection refused."


def test_only_the_first_2_kb_of_the_answer_is_kept(send, receiver, queued_only, fast_retries):
    receiver.reply = b"x" * 10_000
    send()

    [attempt] = attempt_due()

    assert attempt.response_body == "x" * 2048


def test_the_address_is_checked_again_at_delivery_time(send, receiver, queued_only, settings, fast_retries):
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = []  # as if the host had been re-pointed to a private address
    send()

    [attempt] = attempt_due()

    assert receiver.requests == [] and attempt.response_status is None
    assert "private, loopback or link-local" in attempt.error


@pytest.mark.parametrize("address", IPV6_AROUND_PRIVATE_IPV4)
def test_a_host_re_pointed_to_an_ipv6_form_of_a_private_address_is_refused_at_delivery(
        api, send, receiver, dns, address, fast_retries):
    dns["rebind.mittis.test"] = "127.0.0.1"  # allowed here (the receiver's address) when the endpoint is made
    url = receiver.url.replace("127.0.0.1", "rebind.mittis.test")
    assert api.post("/v1/webhook_endpoints", {"url": url, "enabled_events": ["message.queued"]},
                    format="json").status_code == 201
    dns["rebind.mittis.test"] = address
    send()

    [attempt] = attempt_due()

    assert receiver.requests == [] and attempt.response_status is None
    assert "private, loopback or link-local" in attempt.error


def test_an_endpoint_gets_only_the_events_it_subscribed_to(api, send, receiver, endpoint, fast_retries):
    api.patch(f"/v1/webhook_endpoints/{endpoint[0]}", {"enabled_events": ["message.delivered"]}, format="json")

    send()

    assert not Delivery.objects.exists()


def test_a_claimed_delivery_is_attempted_once(send, receiver, queued_only, fast_retries):
    send()
    delivery = Delivery.objects.get()

    first = delivery_attempt(delivery_id=delivery.pk)
    second = delivery_attempt(delivery_id=delivery.pk)

    assert first.succeeded and second is None and len(receiver.requests) == 1
    assert deliveries_sweep(overdue_by=timedelta(0)) == []


def test_a_status_callback_gets_the_messages_events_signed_with_the_callback_secret(
        api, send, receiver, fast_retries, settings):
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = ["127.0.0.1"]
    secret = api.get("/v1/callback_secret").json()["secret"]

    created = send(status_callback=receiver.url + "/msg").json()
    attempt_due()

    assert created["status_callback"] == receiver.url + "/msg"
    [request] = receiver.requests
    payload = Webhook(secret).verify(request.body, request.headers)
    assert (payload["type"], payload["data"]["id"], request.path) == ("message.queued", created["id"], "/hooks/msg")
    assert api.get("/v1/callback_secret").json()["secret"] == secret  # stable until rotated


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest",
                                 *(f"https://[{p.values[0]}]/latest" for p in IPV6_AROUND_PRIVATE_IPV4)])
def test_a_status_callback_must_be_a_safe_url(api, send, url):
    response = send(status_callback=url)

    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == ("url_invalid", "status_callback")
    assert api.get("/v1/messages").json()["data"] == []


def test_rotating_the_callback_secret_signs_with_both_for_a_day(api, send, receiver, fast_retries):
    old = api.get("/v1/callback_secret").json()["secret"]
    new = api.post("/v1/callback_secret/rotate").json()["secret"]

    send(status_callback=receiver.url)
    attempt_due()

    [request] = receiver.requests
    assert new != old
    assert Webhook(new).verify(request.body, request.headers) == Webhook(old).verify(request.body, request.headers)
    assert api.get("/v1/callback_secret").json()["secret"] == new


def test_the_sweeper_runs_on_beat(settings):
    assert any(entry["task"] == "webhooks.sweep_deliveries" and entry["schedule"] <= 60
               for entry in settings.CELERY_BEAT_SCHEDULE.values())
