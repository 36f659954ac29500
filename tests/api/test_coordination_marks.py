"""Coordination marks in Redis (a dispatcher slot, a webhook flush lane): several taken in one round trip."""

import uuid

import redis

from mittis import redis as marks
from mittis.redis import MarkRequest, marks_take, redis_client



def keys(name, count):
    prefix = f"test:marks:{uuid.uuid4().hex}:{name}"
    return [f"{prefix}:{n}" for n in range(count)]


def test_several_requests_take_their_free_marks_in_one_call_and_a_taken_mark_is_not_taken_again():
    slots, lanes = keys("slot", 3), keys("lane", 2)
    redis_client().set(lanes[1], 1, ex=60)  # that lane's flush is running
    answers = {}

    def request(name, mark_keys, first_only=False):
        return MarkRequest(mark_keys, 60, lambda taken: answers.__setitem__(name, taken), first_only=first_only)

    marks_take([request("dispatch", slots, first_only=True), request("flush", lanes)])
    assert answers == {"dispatch": [0], "flush": [0]}  # the first free slot; every free lane
    marks_take([request("dispatch", slots, first_only=True), request("flush", lanes)])
    assert answers == {"dispatch": [1], "flush": []}  # the next slot; no lane left: nothing to start
    assert 0 < redis_client().ttl(slots[1]) <= 60  # a mark expires if its holder dies


def test_without_redis_every_request_acts_as_if_it_took_its_marks(monkeypatch, caplog):
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(marks, "redis_client", lambda: unreachable)
    answers = []

    marks_take([MarkRequest(keys("slot", 2), 60, answers.append, first_only=True),
                MarkRequest(keys("lane", 2), 60, answers.append)])

    assert answers == [None, None]  # work may overlap (row claims keep that safe), never go missing
    assert "Could not take coordination marks" in caplog.text
