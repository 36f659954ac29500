from django.http import JsonResponse
from django.shortcuts import render

from mittis.api.catalogue import ERROR_CODES, ERROR_TYPES


def error_catalogue(request):
    """/docs/errors: every error code, anchored so that an error's doc_url lands on it."""
    return render(request, "docs/errors.html", {"codes": ERROR_CODES.values(), "types": ERROR_TYPES})


def health(request):
    return JsonResponse({"status": "ok"})
