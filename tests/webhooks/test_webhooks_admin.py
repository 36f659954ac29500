"""Staff see endpoints, events, deliveries and every attempt; never a secret."""

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
import pytest

from tests.webhooks.test_delivery_rules import attempt_due
from webhooks.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint


@pytest.fixture
def history(api, send, receiver, endpoint, fast_retries):
    receiver.script = [(500, {})]
    send()
    attempt_due()
    return endpoint


def test_every_webhooks_page_loads_with_data_and_shows_no_secret(admin_client, history):
    secret = history[1]
    for model in (WebhookEndpoint, Event, Delivery, DeliveryAttempt):
        info = model._meta.app_label, model._meta.model_name
        pages = [reverse("admin:%s_%s_changelist" % info)]
        pages += [reverse("admin:%s_%s_change" % info, args=[obj.pk]) for obj in model.objects.all()[:2]]
        for page in pages:
            response = admin_client.get(page)
            assert response.status_code == 200, page
            assert secret not in response.content.decode() and secret[6:] not in response.content.decode()


def test_an_attempt_shows_what_the_receiver_answered(admin_client, history):
    attempt = DeliveryAttempt.objects.get()
    page = admin_client.get(reverse("admin:webhooks_delivery_change", args=[attempt.delivery_id])).content.decode()

    assert "500" in page and attempt.delivery.event.public_id in page


def test_staff_disable_and_reenable_an_endpoint(admin_client, history):
    endpoint = WebhookEndpoint.objects.get()
    url = reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])
    form = {"description": "", "status": "disabled", "disabled_reason": ""}

    admin_client.post(url, form)
    endpoint.refresh_from_db()
    assert endpoint.status == "disabled" and "Disabled by staff" in endpoint.disabled_reason
    admin_client.post(url, {**form, "status": "enabled"})
    endpoint.refresh_from_db()
    assert (endpoint.status, endpoint.disabled_reason, endpoint.failing_since) == ("enabled", "", None)


def test_staff_retry_a_pending_delivery_now(admin_client, history, receiver):
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.PENDING

    admin_client.post(reverse("admin:webhooks_delivery_changelist"),
                      {"action": "retry_now", "_selected_action": [delivery.pk]})

    delivery.refresh_from_db()
    assert delivery.next_attempt_at <= timezone.now()


def test_staff_cannot_create_or_delete_history(admin_client, history):
    assert admin_client.get(reverse("admin:webhooks_event_add")).status_code == 403
    assert admin_client.get(reverse("admin:webhooks_webhookendpoint_add")).status_code == 403
    event = Event.objects.get()
    admin_client.post(reverse("admin:webhooks_event_delete", args=[event.pk]), {"post": "yes"})
    assert Event.objects.filter(pk=event.pk).exists()
    assert admin.site.is_registered(DeliveryAttempt)
