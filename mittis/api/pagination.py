"""Stripe-style lists: newest first, `limit`, `starting_after` / `ending_before` object ids."""

from collections.abc import Callable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS
from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.response import Response

from mittis.api.serializers import StrictIntegerField, StrictSerializer
from mittis.errors import DomainError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class ListParamsSerializer(StrictSerializer):
    """The paging parameters every list accepts; list views extend it with their filters."""

    limit = StrictIntegerField(min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT,
                                     help_text="How many objects to return, 1-100.")
    starting_after = serializers.CharField(required=False, max_length=64,
                                           help_text="An object id: return the objects after it (older).")
    ending_before = serializers.CharField(required=False, max_length=64,
                                          help_text="An object id: return the objects before it (newer).")

    def validate(self, attrs):
        if "starting_after" in attrs and "ending_before" in attrs:
            raise DomainError("parameter_invalid", "Send at most one of 'starting_after' and 'ending_before'.",
                           field="ending_before")
        return attrs


@dataclass(frozen=True)
class Page:
    items: list
    has_more: bool


def paginate(queryset: QuerySet, *, scope: QuerySet, limit: int, starting_after: str | None = None,
             ending_before: str | None = None, read: Callable[[QuerySet], list] = list,
             leading: tuple[str, ...] = ()) -> Page:
    """One page of `queryset`, newest first by internal id.

    Cursor ids are looked up in `scope`, the caller's objects before any filter, so a cursor stays
    valid when filters change and another account's id is simply unknown. `read` turns the page's slice of
    `queryset` into its items, in the slice's order: `list` by default; a list whose items are read in a statement
    of its own passes its reader (the messages: `selectors.message_page_values`). `leading`: fields that
    `queryset` holds to one value each, ordered by before the id, so that only the index that leads with them
    gives the page in order (`selectors.message_list` says why).
    """
    if starting_after:
        queryset = queryset.filter(pk__lt=_cursor_pk(scope, starting_after, "starting_after"))
    if ending_before:
        cursor = _cursor_pk(scope, ending_before, "ending_before")
        rows = read(queryset.filter(pk__gt=cursor).order_by(*(f"-{name}" for name in leading), "pk")[: limit + 1])
        return Page(items=list(reversed(rows[:limit])), has_more=len(rows) > limit)
    rows = read(queryset.order_by(*leading, "-pk")[: limit + 1])
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def _cursor_pk(queryset: QuerySet, public_id: str, param: str) -> int:
    # From the primary even when the page is read from a replica (mittis.replica): an object created a moment
    # ago is a valid cursor, and the page then holds what the replica has of the objects around it.
    pk = queryset.using(DEFAULT_DB_ALIAS).filter(public_id=public_id).values_list("pk", flat=True).first()
    if pk is None:
        raise DomainError("parameter_invalid", f"'{param}': no object with id '{public_id}'.", field=param)
    return pk


def list_envelope(request, page: Page, serializer_class, represent_page=None) -> Response:
    """The contract's list object for one page. `represent_page`: builds the page's items' JSON in the
    serializer's place, for pages read as plain values."""
    data = list(represent_page(page.items)) if represent_page else serializer_class(page.items, many=True).data
    return Response({"object": "list", "url": request.path, "has_more": page.has_more, "data": data})


def list_page(request, *, scope: QuerySet, serializer_class) -> Response:
    """A list endpoint without filters of its own: paging parameters, one page, the envelope."""
    params = ListParamsSerializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    return list_envelope(request, paginate(scope, scope=scope, **params.validated_data), serializer_class)
