"""The staff console in a real browser: Debian's Chromium, driven by Selenium, against a live server.

Screenshots of the dashboard and of a message page are saved under var/screenshots/ (the README says so).
"""

from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading

from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
import pytest
from selenium.webdriver.support.ui import WebDriverWait

from billing.services import balance_top_up
from messaging.services import message_create, message_send
from tests.conftest import chromium
from tests.factories import AccountFactory, SenderFactory
from webhooks.models import Delivery
from webhooks.services import delivery_attempt, endpoint_create

pytestmark = [pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(django_settings.BASE_DIR) / "var" / "screenshots"
RECIPIENT = "+18045550177"


@pytest.fixture
def browser():
    driver = chromium()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture
def receiver():
    """A customer's endpoint that fails the first delivery and accepts the next."""
    answers = [500]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(answers.pop(0) if answers else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()
    server.server_close()


@pytest.fixture
def message(settings, receiver):
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = ["127.0.0.1"]
    settings.MITTIS_WEBHOOK_ALLOW_HTTP = True
    account = AccountFactory(name="Acme Plumbing")
    SenderFactory(account=account, value="+18045550142")
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("5"))
    endpoint_create(account=account, livemode=True, url=receiver, enabled_events=["message.queued"])
    message = message_create(account=account, livemode=True, sender="+18045550142", to=RECIPIENT,
                             body="Your technician is 15 minutes out.")
    message_send(message_id=message.pk)
    for delivery in Delivery.objects.all():
        delivery_attempt(delivery_id=delivery.pk)  # the endpoint answers 500
    return message


def log_in(browser, live_server, role: str):
    user = User.objects.create_user(f"{role}-person", password="correct horse", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element("name", "username").send_keys(user.username)
    browser.find_element("name", "password").send_keys("correct horse")
    browser.find_element("css selector", "input[type=submit]").click()
    # The login page shows the console's header too: wait for the dashboard itself.
    WebDriverWait(browser, 10).until(lambda driver: driver.title.startswith("Dashboard"))


def test_staff_find_a_message_read_its_timeline_and_redeliver_its_webhook(browser, live_server, message):
    log_in(browser, live_server, "operations")
    browser.save_screenshot(str(SCREENSHOTS / "dashboard.png"))
    chart = browser.find_element("css selector", "#dashboard svg").rect
    [bar] = browser.find_elements("css selector", "#dashboard svg rect")  # this hour's message
    assert bar.is_displayed() and bar.rect["x"] + bar.rect["width"] <= chart["x"] + chart["width"] + 1

    browser.get(f"{live_server.url}/admin/messaging/message/")
    search = browser.find_element("id", "searchbar")
    search.send_keys(RECIPIENT)
    search.submit()
    browser.find_element("link text", message.public_id).click()

    timeline = browser.find_element("id", "timeline")
    assert "message.queued" in timeline.text and "message.sent" in timeline.text
    webhook_rows = browser.find_elements("css selector", "#timeline tr.timeline-webhook-attempt")
    assert [row.text.split(": ")[-1].split(" ")[0] for row in webhook_rows] == ["500"]
    browser.save_screenshot(str(SCREENSHOTS / "message.png"))

    browser.find_element("css selector", "button.redeliver").click()
    WebDriverWait(browser, 10).until(lambda driver: driver.find_elements("css selector", "ul.messagelist"))

    assert "Redelivered message.queued" in browser.find_element("css selector", "ul.messagelist").text
    webhook_rows = browser.find_elements("css selector", "#timeline tr.timeline-webhook-attempt")
    assert [row.text.split(": ")[-1].split(" ")[0] for row in webhook_rows] == ["500", "200"]


def test_a_support_user_is_refused_a_balance_adjustment(browser, live_server, message):
    log_in(browser, live_server, "support")

    browser.get(f"{live_server.url}/admin/billing/ledgerentry/add/")
    WebDriverWait(browser, 10).until(lambda driver: "ledgerentry/add" in driver.current_url)

    assert "permission_denied" in browser.page_source
    browser.get(f"{live_server.url}/admin/billing/")
    assert "Add" not in browser.find_element("id", "content-main").text  # no add link offered either
