"""No secret in any process's output: the web server (its access log on), a Celery worker and beat, all at
DEBUG, while keys are used with Bearer and Basic auth, webhook and callback secrets are made and rotated, and
live messages go out through a Twilio carrier with its credentials."""

from base64 import b64encode
from decimal import Decimal
import json
import secrets
import sys
import time

import http.client

import pytest

from billing.services import balance_top_up
from messaging.models import Carrier, Message, Route, RouteCarrier, Sender
from mittis.celery import queues
from mittis.ops.localhost import free_port, wait_for_http, web_command
from tests.conftest import SEED
from tests.factories import api_key_for
from tests.faults.conftest import process_env, running, wait_until
from tests.faults.test_faults import ACCOUNT_SID, carrier_stand_in  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_no_key_secret_or_carrier_credential_reaches_any_process_output(account, carrier_stand_in, tmp_path):
    auth_token = "tw" + secrets.token_hex(16)
    carrier = Carrier(name="primary", kind="twilio", tps=1000, settings={"account_sid": ACCOUNT_SID,
                                                                         "base_url": carrier_stand_in["url"]})
    carrier.credentials = {"auth_token": auth_token}
    carrier.save()
    RouteCarrier.objects.create(route=Route.objects.create(livemode=True), carrier=carrier, position=1)
    Sender.objects.filter(account=account).update(mps=1000)
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("10"))
    live_key, test_key = api_key_for(account, livemode=True), api_key_for(account, livemode=False)
    port = free_port()
    env = process_env(LOG_LEVEL="DEBUG", WEB_ACCESS_LOG="true", MITTIS_WEBHOOK_ALLOWED_PRIVATE="127.0.0.1",
                      MITTIS_SANDBOX_REPORT_DELAY="0.2")
    worker = [sys.executable, "-m", "celery", "-A", "mittis", "worker", "--pool", "solo", "-Q",
              ",".join(queues()), "--without-gossip", "--without-mingle", "--loglevel", "DEBUG"]
    beat = [sys.executable, "-m", "celery", "-A", "mittis", "beat", "--loglevel", "DEBUG",
            "--schedule", str(tmp_path / "beat-schedule")]
    outputs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("web", "worker", "beat")}
    shown = []
    with running(web_command("--bind", f"127.0.0.1:{port}"), env, outputs["web"]), \
            running(worker, env, outputs["worker"]), running(beat, env, outputs["beat"]):
        wait_for_http(f"http://127.0.0.1:{port}/healthz")

        def call(method, path, key, scheme="Bearer", body=None):
            authorization = (f"Bearer {key}" if scheme == "Bearer"
                             else "Basic " + b64encode(f"{key}:".encode()).decode())
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request(method, path, body=json.dumps(body) if body is not None else None,
                               headers={"Authorization": authorization, "Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.status, json.loads(response.read() or b"{}")
            connection.close()
            return answer

        for scheme in ("Bearer", "Basic"):
            status, endpoint = call("POST", "/v1/webhook_endpoints", test_key, scheme,
                                    {"url": "http://127.0.0.1:9/hooks"})
            assert status == 201
            shown += [endpoint["secret"], call("POST", f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret",
                                               test_key, scheme)[1]["secret"]]
            shown.append(call("POST", "/v1/callback_secret/rotate", test_key, scheme)[1]["secret"])
            status, sent = call("POST", "/v1/messages", live_key, scheme, SEED)
            assert status == 201
            assert call("GET", "/v1/messages", live_key + "x", scheme)[0] == 401  # a wrong key, refused
        wait_until(lambda: carrier_stand_in["received"] == 2, what="both live messages reaching the carrier")
        wait_until(lambda: not Message.objects.filter(status="queued").exists(), what="the sends being recorded")
        time.sleep(1)  # what the processes log after
    for output in outputs.values():
        output.close()

    logged = {name: (tmp_path / f"{name}.log").read_text(errors="replace") for name in outputs}
    assert "POST /v1/messages" in logged["web"] and "messaging.send_message" in logged["worker"]  # they did log
    for secret in [live_key, test_key, auth_token, *shown]:
        for name, text in logged.items():
            assert secret not in text and secret.split("_", 1)[-1] not in text, f"{name} logged a secret"
