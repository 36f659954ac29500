"""StrictSerializer binds shallow copies of its declared fields where DRF builds new ones from the declared
ones' arguments (mittis.api.serializers). That relies on DRF's internals: a field keeps no state between
validations but its binding, and a field holding fields names them `child`, `child_relation` or
`_declared_fields`. Checked here on every StrictSerializer of the project, so that a DRF upgrade that breaks
either fails here rather than leaks one request's state into the next."""

import copy

from django.http import QueryDict
import pytest
from rest_framework import serializers as drf
from rest_framework.relations import ManyRelatedField, PrimaryKeyRelatedField

import mittis.urls  # noqa: F401  every view, and so every serializer, imported
from mittis.api.serializers import StrictSerializer, _holds_fields
from tests.conftest import SEED


def subclasses(cls):
    for subclass in cls.__subclasses__():
        yield subclass
        yield from subclasses(subclass)


STRICT = sorted(set(subclasses(StrictSerializer)), key=lambda cls: cls.__qualname__)
VALID = {"MessageCreateSerializer": SEED}


def inputs(cls):
    names = list(cls._declared_fields)
    yield {}
    for value in ("x", 1, None, ["x"], {"k": "v"}, "2030-01-01T00:00:00Z", "+18045550199"):
        yield {name: value for name in names}
    yield QueryDict("&".join(f"{name}=7" for name in names))
    if cls.__name__ in VALID:
        yield VALID[cls.__name__]


def outcome(serializer):
    try:
        valid = serializer.is_valid()
    except Exception as error:  # an ApiError of a serializer's own `validate`
        return type(error), str(error)
    return valid, serializer.errors, serializer.validated_data if valid else None


def state(field) -> dict:
    """A field's attributes, with a copy of the contents of those that are containers: a shallow copy shares
    them with the declared field and every other copy."""
    return {name: (value, copy.copy(value) if isinstance(value, (list, dict, set)) else None)
            for name, value in vars(field).items()}


def assert_unchanged(field, before: dict) -> None:
    after = vars(field)
    assert after.keys() == before.keys()
    for name, (value, contents) in before.items():
        assert after[name] is value, name
        if contents is not None:
            assert value == contents, name


def test_every_strict_serializer_is_checked():
    assert {"MessageCreateSerializer", "ListParamsSerializer", "EndpointCreateSerializer"} <= {
        cls.__name__ for cls in STRICT}


@pytest.mark.parametrize("cls", STRICT, ids=lambda cls: cls.__name__)
def test_shallow_copies_validate_as_drfs_own_and_leave_the_declared_fields_as_they_were(cls, monkeypatch):
    declared = cls._declared_fields
    before = {name: state(field) for name, field in declared.items()}

    for data in inputs(cls):
        first, second = cls(data=data), cls(data=data)
        with monkeypatch.context() as drfs_own:
            drfs_own.setattr(StrictSerializer, "get_fields", drf.Serializer.get_fields)
            reference = outcome(cls(data=data))
        assert outcome(first) == reference == outcome(second)
        for serializer in (first, second):
            for name, field in serializer.fields.items():
                original = declared[name if name in declared else f"{name}_"]  # `from` is declared `from_`
                assert type(field) is type(original) and field is not original
                assert field.parent is serializer and field.field_name == name

    for name, field in declared.items():
        assert_unchanged(field, before[name])


@pytest.mark.parametrize("field", [
    drf.ListField(child=drf.CharField()), drf.DictField(child=drf.CharField()), drf.HStoreField(),
    drf.ListSerializer(child=drf.CharField()),
    ManyRelatedField(child_relation=PrimaryKeyRelatedField(read_only=True)), StrictSerializer(),
], ids=lambda field: type(field).__name__)
def test_fields_that_hold_fields_are_told_apart_to_be_copied_deeply(field):
    assert _holds_fields(field)


def test_a_plain_field_is_copied_shallowly():
    assert not _holds_fields(drf.CharField()) and not _holds_fields(drf.IntegerField())
