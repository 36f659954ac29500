"""The SDK is typed as its users' type checkers see it: mypy --strict passes on it, a user's code gets `Message`,
`Decimal` and `SyncPage[Message]` back (sync and async), and a wrong call is an error before it runs."""

from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[2]

USER_CODE = '''
from datetime import datetime
from decimal import Decimal
from typing import assert_type

from mittis_sdk import AsyncMittis, AsyncPage, Mittis, RateLimit, SyncPage, models, webhooks

client = Mittis("mk_test_x")
message = client.messages.create(from_="+18045550142", to="+18045550199", body="Hi")
assert_type(message, models.Message)
assert_type(message.price, Decimal)
assert_type(message.delivered_at, datetime | None)
page = client.messages.list(status="delivered")
assert_type(page, SyncPage[models.Message])
for item in page:
    assert_type(item, models.Message)
assert_type(client.exports.download("exp_1"), bytes)
assert_type(client.webhooks.verify(b"{}", {}, "whsec_x"), models.Event)
assert_type(webhooks.verify(b"{}", {}, "whsec_x"), models.Event)
if client.last_response:
    assert_type(client.last_response.rate_limit, RateLimit)


async def main(aclient: AsyncMittis) -> None:
    assert_type(await aclient.messages.create(from_="+18045550142", to="+18045550199", body="Hi"), models.Message)
    assert_type(await aclient.messages.list(), AsyncPage[models.Message])
    async for event in aclient.events.list(type="message.delivered"):
        assert_type(event, models.Event)
'''

WRONG_CODE = '''
from mittis_sdk import Mittis

client = Mittis("mk_test_x")
client.messages.create(from_="+18045550142", to="+18045550199")
client.messages.create(from_="+18045550142", to="+18045550199", body="Hi", retries=3)
client.messages.retrieve("msg_1").stauts
'''


def mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_the_sdk_passes_mypy_strict():
    checked = mypy("src/mittis_sdk", cwd=ROOT / "sdk/python")

    assert checked.returncode == 0, checked.stdout


def test_users_code_gets_the_types_and_wrong_calls_are_caught(tmp_path):
    (tmp_path / "user.py").write_text(USER_CODE)
    (tmp_path / "wrong.py").write_text(WRONG_CODE)

    right, wrong = mypy("user.py", cwd=tmp_path), mypy("wrong.py", cwd=tmp_path)

    assert right.returncode == 0, right.stdout
    assert 'Missing named argument "body"' in wrong.stdout
    assert 'Unexpected keyword argument "retries"' in wrong.stdout
    assert '"Message" has no attribute "stauts"' in wrong.stdout
