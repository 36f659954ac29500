"""Two web servers, one limit: the counter is shared, so together they admit exactly the limit."""

from concurrent.futures import ThreadPoolExecutor
import http.client
import os
from pathlib import Path
import subprocess
import time

from django.conf import settings
from django.db import connection
import http_sf
import pytest

from mittis.ops.localhost import web_command
from tests.conftest import free_port
from tests.factories import AccountFactory, api_key_for

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 10
ROOT = Path(__file__).resolve().parents[2]



def get(port: int, path: str, secret: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", path, headers={"Authorization": f"Bearer {secret}"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


@pytest.fixture
def servers():
    """Two separate web servers (`make run`'s) on the test database and the real Redis."""
    db = connection.settings_dict
    env = {**os.environ,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "REDIS_URL": settings.MITTIS_RATE_LIMIT_REDIS_URL,
           "MITTIS_RATE_LIMIT_PREFIX": settings.MITTIS_RATE_LIMIT_PREFIX,
           "LOG_LEVEL": "WARNING"}
    ports = [free_port(), free_port()]
    processes = [subprocess.Popen(web_command("--bind", f"127.0.0.1:{port}", procfile="Procfile.dev"),
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for port in ports]
    try:
        deadline = time.monotonic() + 30
        for port in ports:
            while True:
                try:
                    get(port, "/healthz", "")
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the web server did not start"
                    time.sleep(0.2)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


@pytest.fixture
def limited_key():
    def make():
        account = AccountFactory(rate_limit=LIMIT, rate_limit_window=3600)
        return api_key_for(account)
    return make


def test_alternating_between_two_servers_admits_exactly_the_limit(servers, limited_key):
    secret = limited_key()

    answers = [get(servers[n % 2], "/v1/messages", secret) for n in range(LIMIT + 5)]

    assert [a.status for a in answers] == [200] * LIMIT + [429] * 5
    remaining = [int(a.getheader("X-RateLimit-Remaining")) for a in answers]
    assert remaining == list(range(LIMIT - 1, -1, -1)) + [0] * 5
    for answer in answers:
        [(_, limit)] = http_sf.parse(answer.getheader("RateLimit").encode(), tltype="list")
        [(_, policy)] = http_sf.parse(answer.getheader("RateLimit-Policy").encode(), tltype="list")
        assert (policy["q"], policy["w"], limit["r"]) == (LIMIT, 3600, int(answer.getheader("X-RateLimit-Remaining")))
    assert 3500 < int(answers[-1].getheader("Retry-After")) <= 3600


def test_a_burst_at_both_servers_at_once_admits_exactly_the_limit(servers, limited_key):
    secret = limited_key()

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda n: get(servers[n % 2], "/v1/messages", secret).status, range(4 * LIMIT)))

    assert statuses.count(200) == LIMIT and statuses.count(429) == 3 * LIMIT
