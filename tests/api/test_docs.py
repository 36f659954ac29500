"""/openapi.json and /docs: the reference a developer reads; the README and the operations guide."""

import html
import json
import os
from pathlib import Path
import re
import subprocess
import sys

from django.conf import settings
import pytest

from mittis.api.catalogue import ERROR_CODES
from tests.conftest import NEXT_VERSION, SEED
from webhooks.serializers import EVENT_TYPES


@pytest.fixture
def schema(client, db):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_documents_the_message_endpoints(schema):
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/v1/messages", "/v1/messages/{id}", "/v1/messages/{id}/events", "/v1/messages/preview",
        "/v1/messages/{id}/cancel", "/v1/messages/{id}/redact",
        "/v1/pricing", "/v1/balance", "/v1/ledger", "/v1/usage", "/v1/opt_outs",
        "/v1/exports", "/v1/exports/{id}", "/v1/exports/{id}/download",
        "/v1/webhook_endpoints", "/v1/webhook_endpoints/{id}", "/v1/webhook_endpoints/{id}/rotate_secret",
        "/v1/webhook_endpoints/{id}/deliveries", "/v1/webhook_endpoints/{id}/recover",
        "/v1/events", "/v1/events/{id}", "/v1/events/{id}/redeliver",
        "/v1/callback_secret", "/v1/callback_secret/rotate",
        "/v1/test_helpers/inbound_messages", "/v1/test_helpers/messages/{id}/delivery_report"}
    assert set(schema["paths"]["/v1/messages"]) == {"get", "post"}


def test_the_test_helpers_are_documented_as_test_mode_only(schema):
    [tag] = [tag for tag in schema["tags"] if tag["name"] == "Test helpers"]
    assert "Test mode only" in tag["description"]
    for path in ("/v1/test_helpers/inbound_messages", "/v1/test_helpers/messages/{id}/delivery_report"):
        operation = schema["paths"][path]["post"]
        assert operation["tags"] == ["Test helpers"] and "Test mode only" in operation["description"]
        assert "url_not_found" in operation["responses"]["404"]["description"]
    # Declared for that description, every tag in the order the reference showed them before.
    used = [operation["tags"][0] for item in schema["paths"].values() for operation in item.values()]
    assert [tag["name"] for tag in schema["tags"]] == list(dict.fromkeys(used))


def test_the_send_example_is_the_seed_request(schema):
    post = schema["paths"]["/v1/messages"]["post"]
    examples = post["requestBody"]["content"]["application/json"]["examples"]

    assert [e["value"] for e in examples.values()] == [SEED]
    assert list(post["responses"]["201"]["content"]["application/json"]["examples"].values())[0]["value"][
        "price"] == "0.008"
    assert "curl http://127.0.0.1:8000/v1/messages" in post["description"]
    create = schema["components"]["schemas"]["MessageCreateRequest"]
    assert set(create["required"]) == {"from", "to", "body"}
    assert set(post["responses"]) >= {"201", "400", "401", "415"}


def test_the_auth_scheme_is_bearer_api_keys(schema):
    assert schema["components"]["securitySchemes"]["ApiKey"] | {"description": None, "bearerFormat": None} == {
        "type": "http", "scheme": "bearer", "description": None, "bearerFormat": None}
    assert schema["paths"]["/v1/messages"]["post"]["security"] == [{"ApiKey": []}]


def test_the_schema_lists_every_error_code(schema):
    description = schema["info"]["description"]

    for code in ERROR_CODES:
        assert f"`{code}`" in description


def test_docs_and_the_error_catalogue_are_served(client, db):
    docs = client.get("/docs")
    catalogue = client.get("/docs/errors")

    assert docs.status_code == 200 and b"/openapi.json" in docs.content
    assert catalogue.status_code == 200
    for code in ERROR_CODES:
        assert f'id="{code}"'.encode() in catalogue.content


def test_the_error_catalogue_renders_its_markdown_and_shows_an_absolute_doc_url(client, db):
    page = client.get("/docs/errors").content.decode()

    for entry in ERROR_CODES.values():
        meaning = re.search(rf'<tr id="{entry.code}">.*?<td>((?:(?!</td>).)*)</td>\s*</tr>', page, re.S).group(1)
        assert "`" not in meaning and meaning.count("<code>") == entry.description.count("`") // 2, entry.code
    assert '<code>+18045550199</code>' in page
    assert f'"doc_url": "{settings.MITTIS_PUBLIC_URL}/docs/errors#invalid_phone_number"' in page


def test_the_docs_markdown_escapes_html_and_script_links():
    from mittis.api.docs import MARKDOWN

    rendered = MARKDOWN.renderInline("`a` <script>alert(1)</script> [b](javascript:alert(1)) [c](/docs) *d*")

    assert rendered == ('<code>a</code> &lt;script&gt;alert(1)&lt;/script&gt; [b](javascript:alert(1)) '
                        '<a href="/docs">c</a> <em>d</em>')


def test_the_docs_page_loads_its_assets_locally(client, db):
    docs = client.get("/docs").content.decode()

    assert "cdn" not in docs.lower() and "fonts.googleapis.com" not in docs
    asset = docs.split('src="')[1].split('"')[0]
    assert client.get(asset).status_code == 200


def test_the_schema_generates_without_warnings_and_validates(db, tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_every_operation_documents_the_limit_headers_and_429_and_every_post_the_idempotency_key(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "429" in responses, (method, path)
            for response in responses.values():
                assert {"RateLimit", "RateLimit-Policy", "X-RateLimit-Remaining"} <= set(response["headers"])
            parameters = [p.get("$ref") for p in operation.get("parameters", [])]
            assert ("#/components/parameters/IdempotencyKey" in parameters) == (method == "post"), (method, path)
    assert schema["components"]["parameters"]["IdempotencyKey"]["in"] == "header"
    assert "Error" in schema["components"]["schemas"]


def test_the_docs_explain_idempotency_and_rate_limits(schema):
    description = schema["info"]["description"]

    assert "## Idempotency" in description and "24 hours" in description
    assert "Idempotent-Replayed: true" in description
    assert "## Rate limits" in description and 'RateLimit-Policy: "default";q=100;w=1' in description


def test_the_docs_have_a_webhooks_guide_whose_python_verifies_a_real_signature(schema):
    import re

    from standardwebhooks import Webhook  # noqa: F401  the guide's import must be real

    from webhooks import signing

    description = schema["info"]["description"]
    assert "## Webhooks" in description
    for event_type in EVENT_TYPES:
        assert f"`{event_type}`" in description
    snippet = re.search(r"```python\n(.*?)```", description, re.S).group(1)
    assert len([line for line in snippet.splitlines() if line.strip()]) <= 6
    secret = signing.secret_generate()
    body = '{"object": "event", "id": "evt_1", "type": "message.sent", "data": {"id": "msg_1", "status": "sent"}}'
    import time

    class Request:
        headers = signing.headers(secrets=[secret], msg_id="evt_1", timestamp=int(time.time()), body=body)

    Request.body = body
    namespace = {}
    exec(snippet.replace("whsec_…", secret), namespace)
    assert namespace["handle"](Request()) == 200


def test_the_docs_list_every_message_error_code_with_its_retryable_flag(schema):
    from messaging.errors import MESSAGE_ERRORS

    description = schema["info"]["description"]
    assert "## Why a message failed" in description and "MESSAGE_ERROR_CATALOGUE" not in description
    for error in MESSAGE_ERRORS.values():
        assert f"| `{error.code}` | {'yes' if error.retryable else 'no'} |" in description


ROOT = Path(settings.BASE_DIR)


def links(markdown: str) -> set[str]:
    """Every link target of a Markdown text outside code: `[text](target)` and bare local server URLs."""
    prose = re.sub(r"`[^`]*`", "", re.sub(r"```.*?```", "", markdown, flags=re.S))
    targets = set(re.findall(r"\]\(([^)\s]+)\)", prose))
    targets |= {url.rstrip(".,;:") for url in re.findall(r"http://127\.0\.0\.1:8000[^\s)|]*", prose)}
    return targets


def assert_resolves(client, target: str, anchors: set[str]) -> None:
    if target.startswith("http://127.0.0.1:8000"):
        target = target.removeprefix("http://127.0.0.1:8000") or "/"
    if target.startswith("#"):
        assert target[1:] in anchors, target
    elif target.startswith("/"):
        assert client.get(target, follow=True).status_code == 200, target
    elif not target.startswith("https://"):  # the outside world is not the tests' to check
        assert (ROOT / target.split("#")[0]).is_file(), target


def test_the_operations_guide_is_served_with_its_headings(client, db):
    guide = (ROOT / "docs" / "operations.md").read_text()
    response = client.get("/docs/operations")

    assert response.status_code == 200
    page = response.content.decode()
    headings = re.findall(r"^#{1,3} (.+)$", re.sub(r"```.*?```", "", guide, flags=re.S), re.M)
    assert {"Commands", "Production", "Settings", "Scale-out", "make bench", "make load", "Tests", "Layout"} <= set(headings)
    for heading in headings:
        assert re.search(rf'<h[123] id="[a-z0-9-]+">{re.escape(html.escape(heading, quote=False))}</h[123]>', page), heading
    # Nothing fetched, so the page works offline; its icon is inline, so not even /favicon.ico is asked for.
    assert "<script" not in page and re.findall(r"<link[^>]*>", page) == ['<link rel="icon" href="data:,">']
    assert "<table>" in page


def test_every_link_of_the_guide_resolves(client, db):
    page = client.get("/docs/operations").content.decode()

    for target in links((ROOT / "docs" / "operations.md").read_text()):
        assert_resolves(client, target, anchors=set(re.findall(r'id="([^"]+)"', page)))


def test_every_link_of_the_readme_resolves(client, db):
    targets = links((ROOT / "README.md").read_text())

    assert {"docs/operations.md", "http://127.0.0.1:8000/docs/operations"} <= targets
    for target in targets:
        assert_resolves(client, target, anchors=set())


DOCS_PAGES = ["/docs", "/docs/errors", "/docs/changelog", "/docs/versioning", "/docs/operations"]


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_every_docs_page_links_the_others(client, db, path):
    page = client.get(path).content.decode()

    for other in DOCS_PAGES:
        assert f'href="{other}"' in page


def test_the_changelog_is_the_registry_of_versions_today_one(client, db):
    page = client.get("/docs/changelog").content.decode()

    assert re.findall(r'<h2 id="([0-9-]+)">', page) == ["2026-12-07"]
    assert "The first dated version: the API as" in page
    assert "<script" not in page and re.findall(r"<link[^>]*>", page) == ['<link rel="icon" href="data:,">']


def test_the_changelog_lists_a_registered_change_under_its_date(client, db, body_renamed):
    page = client.get("/docs/changelog").content.decode()

    assert re.findall(r'<h2 id="([0-9-]+)">', page) == [NEXT_VERSION, "2026-12-07"]
    assert f'<h2 id="{NEXT_VERSION}">{NEXT_VERSION} <span class="current">current</span></h2>' in page
    assert "<li>Messages: <code>text</code> is renamed <code>body</code>.</li>" in page


def test_the_versioning_policy_says_what_breaks_how_long_versions_live_and_what_to_tolerate(client, db):
    response = client.get("/docs/versioning")
    policy = (ROOT / "docs" / "versioning.md").read_text()

    assert response.status_code == 200
    page = response.content.decode()
    for heading in ["Which version answers", "What is breaking", "What your code must tolerate",
                    "How long a version lives", "Upgrading"]:
        assert f">{heading}</h2>" in page
    assert "at least **24 months**" in policy
    assert "**New fields.** Ignore fields you do not know" in policy
    assert "**New enum values.**" in policy and "must take a default" in policy
    assert "<script" not in page and re.findall(r"<link[^>]*>", page) == ['<link rel="icon" href="data:,">']
    for target in links(policy):
        assert_resolves(client, target, anchors=set(re.findall(r'id="([^"]+)"', page)))


def test_every_operation_takes_and_answers_the_version_header(schema):
    versions_parameter = schema["components"]["parameters"]["MittisVersion"]
    assert (versions_parameter["name"], versions_parameter["in"], versions_parameter["required"]) == (
        "Mittis-Version", "header", False)
    assert versions_parameter["schema"]["enum"] == ["2026-12-07"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert {"$ref": "#/components/parameters/MittisVersion"} in operation["parameters"], (method, path)
            assert "`api_version_invalid`" in operation["responses"]["400"]["description"], (method, path)
            for response in operation["responses"].values():
                assert "Mittis-Version" in response["headers"], (method, path)
    assert "## Versions" in schema["info"]["description"]


# A new process: sixteen threads ask for /openapi.json at once, then one more asks. Every build is counted,
# and the bytes are compared with drf-spectacular's own view, which builds afresh each time.
FIRST_REQUESTS_AT_ONCE = r"""
import hashlib, json, threading
import django
django.setup()
from django.test import Client, RequestFactory
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.views import SpectacularJSONAPIView

builds, build = [], SchemaGenerator.get_schema
SchemaGenerator.get_schema = lambda self, *args, **kwargs: builds.append(1) or build(self, *args, **kwargs)
THREADS = 16
start, answers = threading.Barrier(THREADS), [None] * THREADS

def ask(n):
    client = Client()
    start.wait()
    response = client.get("/openapi.json")
    answers[n] = [response.status_code, hashlib.sha256(response.content).hexdigest(), response["Content-Type"],
                  response["Content-Disposition"]]

threads = [threading.Thread(target=ask, args=(n,)) for n in range(THREADS)]
for thread in threads: thread.start()
for thread in threads: thread.join()
builds_at_once = len(builds)
again = Client().get("/openapi.json", HTTP_ACCEPT="application/json")
builds_after = len(builds)
fresh = SpectacularJSONAPIView.as_view()(RequestFactory().get("/openapi.json"))
fresh.render()
print(json.dumps({"answers": answers, "builds_at_once": builds_at_once, "builds_after": builds_after,
                  "again": [again.status_code, hashlib.sha256(again.content).hexdigest(), again["Content-Type"]],
                  "fresh": [hashlib.sha256(fresh.content).hexdigest(), fresh["Content-Type"],
                            fresh["Content-Disposition"]]}))
"""


def test_the_schema_is_built_once_per_process_and_served_to_threads_at_once_unchanged():
    ran = subprocess.run([sys.executable, "-c", FIRST_REQUESTS_AT_ONCE], cwd=settings.BASE_DIR, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "DJANGO_SETTINGS_MODULE": "mittis.settings"})
    assert ran.returncode == 0, ran.stderr[-3000:]
    found = json.loads(ran.stdout.strip().splitlines()[-1])

    fresh_hash, fresh_type, fresh_disposition = found["fresh"]
    assert found["answers"] == [[200, fresh_hash, fresh_type, fresh_disposition]] * 16  # the bytes of today's view
    assert found["builds_at_once"] == 1
    assert found["builds_after"] == 1  # the next request did not build it again
    assert found["again"] == [200, fresh_hash, "application/json"]


def test_query_parameters_do_not_make_another_schema(client, db):
    plain = client.get("/openapi.json").content

    assert client.get("/openapi.json?version=evil&lang=fr").content == plain
