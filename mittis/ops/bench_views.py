"""Reference endpoints for `make bench` (served only with MITTIS_BENCH_REFERENCES=true): the cost of the
framework alone, so the API's figures are ratios that hold on a noisy machine.

R1 a bare Django JSON view; R2 a DRF POST with a 3-field serializer; R3 R2 plus one insert; R4 R3 plus
a Celery publish on commit.
"""

from django.db import transaction
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from mittis.api.models import BenchRecord


@csrf_exempt
def r1(request):
    return JsonResponse({"ok": True})


class ThreeFields(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    count = serializers.IntegerField()
    note = serializers.CharField(max_length=200, required=False, default="")


class R2(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        data = ThreeFields(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(data.validated_data, status=201)


class R3(R2):
    def post(self, request):
        data = ThreeFields(data=request.data)
        data.is_valid(raise_exception=True)
        record = BenchRecord.objects.create(**data.validated_data)
        return Response({"id": record.pk, **data.validated_data}, status=201)


class R4(R2):
    def post(self, request):
        from mittis.api.tasks import noop

        data = ThreeFields(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            record = BenchRecord.objects.create(**data.validated_data)
            transaction.on_commit(lambda: noop.delay(record.pk))
        return Response({"id": record.pk, **data.validated_data}, status=201)


urlpatterns = [
    path("r1", r1),
    path("r2", R2.as_view()),
    path("r3", R3.as_view()),
    path("r4", R4.as_view()),
]
