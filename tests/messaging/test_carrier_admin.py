"""Staff configure carriers and routes in the admin; credentials go in encrypted and never come out."""

from django.urls import reverse

from messaging.models import Carrier, Route


def test_a_carrier_is_configured_with_write_only_encrypted_credentials(admin_client, db):
    response = admin_client.post(reverse("admin:messaging_carrier_add"), {
        "name": "twilio-main", "kind": "twilio", "enabled": "on", "tps": "25",
        "settings": '{"account_sid": "AC0123456789abcdef0123456789abcdef"}',
        "new_credentials": '{"auth_token": "s3cr3t-token-value"}'})

    assert response.status_code == 302
    carrier = Carrier.objects.get()
    assert carrier.credentials == {"auth_token": "s3cr3t-token-value"}
    assert "s3cr3t-token-value" not in carrier.credentials_encrypted
    page = admin_client.get(reverse("admin:messaging_carrier_change", args=[carrier.pk])).content.decode()
    assert "s3cr3t-token-value" not in page and carrier.credentials_encrypted not in page

    admin_client.post(reverse("admin:messaging_carrier_change", args=[carrier.pk]), {
        "name": "twilio-main", "kind": "twilio", "enabled": "on", "tps": "30",
        "settings": '{"account_sid": "AC0123456789abcdef0123456789abcdef"}', "new_credentials": ""})
    carrier.refresh_from_db()
    assert carrier.tps == 30 and carrier.credentials == {"auth_token": "s3cr3t-token-value"}  # blank keeps them


def test_credentials_that_are_not_json_are_refused(admin_client, db):
    response = admin_client.post(reverse("admin:messaging_carrier_add"), {
        "name": "smsc", "kind": "smpp", "tps": "10", "settings": "{}", "new_credentials": "password=1"})

    assert response.status_code == 200 and "new_credentials" in response.context["adminform"].form.errors
    assert not Carrier.objects.exists()


def test_a_route_is_set_up_with_its_carriers_in_order(admin_client, db):
    first = Carrier.objects.create(name="first", kind="sandbox")
    second = Carrier.objects.create(name="second", kind="sandbox")

    admin_client.post(reverse("admin:messaging_route_add"), {
        "prefix": "", "country": "GB", "livemode": "on",
        "entries-TOTAL_FORMS": "2", "entries-INITIAL_FORMS": "0",
        "entries-0-carrier": first.pk, "entries-0-position": "1", "entries-0-weight": "1",
        "entries-1-carrier": second.pk, "entries-1-position": "2", "entries-1-weight": "1"})

    route = Route.objects.get()
    assert route.country == "GB" and [e.carrier.name for e in route.entries.all()] == ["first", "second"]
    assert "1. first (w1), 2. second (w1)" in admin_client.get(reverse("admin:messaging_route_changelist")).content.decode()
