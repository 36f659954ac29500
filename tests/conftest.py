from contextlib import contextmanager
import os
import shutil
import uuid

from django.conf import settings as django_settings
import kombu.pools
import pytest
from rest_framework.test import APIClient

from mittis import versions
from mittis.celery import app as celery_app, queue_of, queues
from mittis.ops.localhost import free_port  # noqa: F401 (the tests' import of it)
from tests.factories import AccountFactory, SenderFactory, api_key_for

SEED = {"from": "+18045550142", "to": "+18045550199", "body": "Your technician is 15 minutes out."}
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")

# The tests use the real broker (`make test` starts one). Queues of their own per run keep these tests'
# tasks apart from anything else on that broker; processes the tests start get the prefix (MITTIS_QUEUE_PREFIX).
django_settings.MITTIS_QUEUE_PREFIX = f"mittis-test-{uuid.uuid4().hex[:8]}-"
celery_app.conf.task_default_queue = queue_of("unrouted")  # where a task without a route would go


@pytest.fixture
def account(db):
    account = AccountFactory(name="Acme Plumbing")
    SenderFactory(account=account, value="+18045550142")
    return account


@pytest.fixture
def test_key(account):
    return api_key_for(account)


@pytest.fixture
def api(test_key):
    """An API client authenticated with the account's test key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {test_key}")
    return client


@pytest.fixture
def anonymous():
    return APIClient()


@pytest.fixture
def send(api):
    """POST /v1/messages with the seed body, overridden by keyword."""
    def _send(client=None, **overrides):
        body = {**SEED, **overrides}
        return (client or api).post("/v1/messages", body, format="json")
    return _send


# A version of the tests' own, after the first: none exists yet (mittis/versions.py).
NEXT_VERSION = "2027-03-01"


def _renamed(mapping: dict, old: str, new: str) -> dict:
    return {(new if key == old else key): value for key, value in mapping.items()}


@pytest.fixture
def body_renamed(monkeypatch):
    """A breaking change registered for the test: from NEXT_VERSION on, a message's `text` is called `body`. Older
    versions read `text` in answers, events and payloads, and send it to POST /v1/messages and its preview."""
    upgrade = lambda request: _renamed(request, "text", "body")  # noqa: E731
    change = versions.VersionChange(
        NEXT_VERSION, "Messages: `text` is renamed `body`.", downgrades={"message": lambda m: _renamed(m, "body", "text")},
        upgrades={"POST /v1/messages": upgrade, "POST /v1/messages/preview": upgrade})
    monkeypatch.setattr(versions, "_registry", versions.Registry([*versions.CHANGES, change]))
    return change


@pytest.fixture(autouse=True)
def fresh_price_cache():
    """Prices a test wrote are rolled back with it, which no signal reports: forget the process's copy."""
    yield
    from billing.selectors import prices_changed

    prices_changed()


@pytest.fixture(autouse=True)
def own_rate_limit_counters(settings):
    """Each test counts its requests from zero: the test client's address is shared by every test."""
    settings.MITTIS_RATE_LIMIT_PREFIX = f"mittis-test:{uuid.uuid4().hex[:12]}"


def drain_queued_tasks() -> list[dict]:
    """Take every task message off this run's queues on the real broker; return their headers
    (`task`, `eta`, `kwargsrepr`...), queue by queue (`queues()`'s order), each oldest first."""
    import queue as queue_module

    taken = []
    with celery_app.connection_for_read() as conn:
        for name in [*queues(), celery_app.conf.task_default_queue]:
            queue = conn.SimpleQueue(name)
            try:
                while True:
                    try:
                        message = queue.get(block=False)
                    except queue_module.Empty:
                        break
                    taken.append(message.headers)
                    message.ack()
            finally:
                queue.close()
    return taken


def in_process_worker(**options):
    """A Celery worker in this process (a thread, the solo pool) consuming every concern's queue of this run."""
    from celery.contrib.testing.worker import start_worker

    return start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING",
                        queues=queues(), **options)


@contextmanager
def broker_down():
    """Publishing fails as if Redis were stopped, for this process (an in-process worker keeps consuming):
    every publish is pointed at a port where nothing listens, then put back. Through CELERY_BROKER_WRITE_URL,
    since Celery reads the broker's URL from the environment before its configuration: setting
    `conf.broker_url` while CELERY_BROKER_URL is set changed nothing, and messages "published during the
    outage" reached the real broker (and sometimes a worker before the test's next line)."""
    previous = os.environ.get("CELERY_BROKER_WRITE_URL")
    options = celery_app.conf.broker_transport_options
    os.environ["CELERY_BROKER_WRITE_URL"] = "redis://127.0.0.1:9/0"  # nothing listens on port 9
    celery_app.conf.broker_transport_options = django_settings.MITTIS_BROKER_PUBLISH_RETRY
    celery_app._pool = celery_app.amqp._producer_pool = None
    try:
        assert celery_app.connection_for_write().port == 9, "the outage must reach every publish"
        yield
    finally:
        # Rebuild every pool afresh on the real broker: kombu keeps producer pools in a global registry,
        # and one built (or closed) for the dead URL must not serve the tests that follow.
        if previous is None:
            del os.environ["CELERY_BROKER_WRITE_URL"]
        else:
            os.environ["CELERY_BROKER_WRITE_URL"] = previous
        celery_app.conf.broker_transport_options = options
        kombu.pools.reset()
        celery_app._pool = celery_app.amqp._producer_pool = None


def chromium(*flags: str, performance_log: bool = False):
    """Debian's Chromium, headless, driven by Selenium (the test is skipped without it); `performance_log` keeps
    the DevTools network events for `driver.get_log("performance")`."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (`.ci/run` installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", *flags):
        options.add_argument(flag)
    if performance_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    return driver


@pytest.fixture
def public_dns(monkeypatch):
    """hooks.example.com resolves to a public address (the outside world's DNS, stubbed)."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host.endswith("example.com"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]
        if host == "rebound.example.net":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
