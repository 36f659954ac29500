"""/docs and /docs/errors in a real browser (Debian's Chromium) with the network blocked: each page renders, and
every request it makes stays on this host and succeeds."""

import json
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from mittis.api.docs import REDOC_BUNDLE, REDOC_LOGO, redoc_bundle_bytes
from tests.conftest import chromium

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# No name resolves but this host's: a request leaving it fails, and is seen failing.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"


@pytest.fixture
def offline_browser():
    driver = chromium(OFFLINE, performance_log=True)
    yield driver
    driver.quit()


def network(driver) -> tuple[list[str], list[str]]:
    """(every URL requested, every failure: a request that failed or was answered 4xx/5xx) since the last call."""
    requested, failed = [], []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            requested.append(params["request"]["url"])
        elif message["method"] == "Network.loadingFailed":
            failed.append(f"{params.get('type')} {params['errorText']} {params.get('blockedReason') or ''}")
        elif message["method"] == "Network.responseReceived" and params["response"]["status"] >= 400:
            failed.append(f"{params['response']['status']} {params['response']['url']}")
    return requested, failed


def outside(urls: list[str]) -> list[str]:
    """The URLs that would leave this host (inline `data:` images and the like never do)."""
    return [url for url in urls if urlsplit(url).scheme in {"http", "https", "ws", "wss"}
            and urlsplit(url).hostname not in LOCAL_HOSTS]


def test_the_reference_renders_offline_from_this_host_alone(offline_browser, live_server):
    offline_browser.get(f"{live_server.url}/docs")
    # Redoc has fetched the schema and drawn the operations, and its sidebar credit (whose logo came from a CDN).
    WebDriverWait(offline_browser, 30).until(
        lambda driver: "Send a message" in driver.find_element("css selector", "body").text)
    WebDriverWait(offline_browser, 10).until(
        lambda driver: driver.find_elements("css selector", "img[alt='redocly logo']"))
    assert "Mittis API" in offline_browser.find_element("css selector", "h1").text

    requested, failed = network(offline_browser)
    assert f"{live_server.url}/openapi.json" in requested
    assert outside(requested) == [] and failed == []


def test_the_error_catalogue_renders_offline_from_this_host_alone(offline_browser, live_server):
    offline_browser.get(f"{live_server.url}/docs/errors")
    meaning = offline_browser.find_element("css selector", "tr#invalid_phone_number td:last-child")

    assert "to" in [code.text for code in meaning.find_elements("css selector", "code")]  # `to`, rendered
    assert "`" not in offline_browser.find_element("css selector", "table").text
    requested, failed = network(offline_browser)
    assert requested and outside(requested) == [] and failed == []


@pytest.mark.parametrize("path, heading", [("/docs/operations", "Production"), ("/docs/changelog", "2026-12-07"),
                                           ("/docs/versioning", "What is breaking")])
def test_the_markdown_pages_render_offline_from_this_host_alone(offline_browser, live_server, path, heading):
    offline_browser.get(f"{live_server.url}{path}")

    assert any(h2.text.startswith(heading) for h2 in offline_browser.find_elements("css selector", "h2"))
    requested, failed = network(offline_browser)
    assert requested and outside(requested) == [] and failed == []


def test_a_request_leaving_the_host_fails_and_is_seen(offline_browser, live_server):
    """The two tests above would notice a page that reached out: this browser is offline and says so."""
    offline_browser.get(f"{live_server.url}/docs/errors")
    network(offline_browser)
    offline_browser.execute_async_script(
        "fetch('https://fonts.googleapis.com/css2?family=Roboto').catch(() => null).then(arguments[0])")

    requested, failed = network(offline_browser)
    assert outside(requested) == ["https://fonts.googleapis.com/css2?family=Roboto"]
    assert any("ERR_NAME_NOT_RESOLVED" in failure for failure in failed)


def test_the_served_redoc_is_the_sidecars_without_its_cdn_logo():
    """When an upgrade of drf-spectacular-sidecar moves the logo, this fails: see the browser tests before
    changing REDOC_LOGO (if Redoc fetches nothing elsewhere any more, the rewrite can go)."""
    from django.contrib.staticfiles import finders

    with open(finders.find(REDOC_BUNDLE), "rb") as bundle:
        assert bundle.read().count(REDOC_LOGO) == 1
    assert b"cdn.redoc.ly" not in redoc_bundle_bytes()
