"""The registry of API versions (mittis/versions.py): what exists today, and how a change carries objects back and
requests forward. Pure: no database."""

import pytest

from mittis import versions
from tests.conftest import NEXT_VERSION

FIRST = versions.FIRST_VERSION


def test_today_there_is_one_version_and_no_change():
    assert FIRST == "2026-12-07"
    assert versions.known() == (FIRST,) and versions.current() == FIRST
    assert versions.CHANGES == [] and versions.history() == [(FIRST, [])]


def test_a_registered_change_makes_its_date_the_current_version(body_renamed):
    assert versions.known() == (FIRST, NEXT_VERSION) and versions.current() == NEXT_VERSION
    assert versions.history() == [(NEXT_VERSION, [body_renamed]), (FIRST, [])]


def rename(old, new):
    return lambda mapping: {(new if key == old else key): value for key, value in mapping.items()}


def test_objects_are_walked_back_newest_change_first_inside_lists_and_events_but_never_inside_metadata(monkeypatch):
    # 2027-06-01 renamed `text` to `body`; 2027-03-01 had renamed `content` to `text`: 2026-12-07 reads `content`.
    registry = versions.Registry([
        versions.VersionChange("2027-06-01", "`text` is `body`.", downgrades={"message": rename("body", "text")}),
        versions.VersionChange("2027-03-01", "`content` is `text`.", downgrades={"message": rename("text", "content")}),
    ])
    message = {"object": "message", "body": "hi", "metadata": {"object": "message", "body": "mine"}}
    page = {"object": "list", "data": [message, {"object": "event", "data": message}]}
    monkeypatch.setattr(versions, "_registry", registry)

    older = versions.downgrade(page, FIRST)
    middle = versions.downgrade(page, "2027-03-01")
    newest = versions.downgrade(page, "2027-06-01")

    shown = {"object": "message", "content": "hi", "metadata": {"object": "message", "body": "mine"}}
    assert older == {"object": "list", "data": [shown, {"object": "event", "data": shown}]}
    assert middle["data"][0] == {"object": "message", "text": "hi", "metadata": message["metadata"]}
    assert newest is page  # the current version: nothing walked, nothing copied
    assert page["data"][0] is message and message["body"] == "hi"  # the newest shape is left as it was


def test_a_request_is_walked_forward_oldest_change_first_for_its_operation_only(monkeypatch):
    registry = versions.Registry([
        versions.VersionChange("2027-03-01", "`content` is `text`.", upgrades={"POST /v1/messages": rename("content", "text")}),
        versions.VersionChange("2027-06-01", "`text` is `body`.", upgrades={"POST /v1/messages": rename("text", "body")}),
    ])
    monkeypatch.setattr(versions, "_registry", registry)

    assert versions.upgrade({"content": "hi"}, operation="POST /v1/messages", version=FIRST) == {"body": "hi"}
    assert versions.upgrade({"text": "hi"}, operation="POST /v1/messages", version="2027-03-01") == {"body": "hi"}
    assert versions.upgrade({"content": "hi"}, operation="POST /v1/messages/preview", version=FIRST) == {"content": "hi"}
    assert versions.upgrade(["a", "list"], operation="POST /v1/messages", version=FIRST) == ["a", "list"]


@pytest.mark.parametrize("date", ["2026-12-07", "2026-01-01", "27-03-01", "2027-3-1"])
def test_a_change_is_dated_after_the_first_version_and_written_yyyy_mm_dd(date):
    with pytest.raises(ValueError):
        versions.Registry([versions.VersionChange(date, "?")])


@pytest.mark.parametrize("value, says", [
    ("2026-12-07", None),
    ("2026-12-08", "Mittis-Version 2026-12-08 is not a version of the Mittis API. The versions are 2026-12-07; "
                   "see /docs/changelog."),
    ("yesterday", "Mittis-Version must be a date written YYYY-MM-DD, like 2026-12-07."),
    (" 2026-12-07", "Mittis-Version must be a date written YYYY-MM-DD, like 2026-12-07."),
    ("２０２６-12-07", "Mittis-Version must be a date written YYYY-MM-DD, like 2026-12-07."),  # digits, but not ASCII
])
def test_what_is_a_version(value, says):
    assert versions.problem(value, name="Mittis-Version") == says
    assert versions.is_known(value) == (says is None)
