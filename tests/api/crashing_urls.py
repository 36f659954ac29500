"""A URLconf with views that crash, to prove a 500 still answers in the error shape."""

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from messaging.services import message_create


class CrashingApiView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    def get(self, request, rest: str = ""):
        raise RuntimeError("boom")


def crashing_django_view(request):
    raise RuntimeError("boom")


urlpatterns = [
    path("v1/crash", CrashingApiView.as_view()),
    path("v1/crash/<str:rest>", CrashingApiView.as_view()),  # any path: what the error log line shows of it
    path("plain-crash", crashing_django_view),
    path("", include("mittis.urls")),
]

handler404 = "mittis.api.errors.not_found_view"
handler500 = "mittis.api.errors.server_error_view"


class CrashAfterWritingView(APIView):
    """Accepts a message for real, then crashes before answering: the crash must undo the write."""

    def post(self, request):
        message_create(account=request.user.account, livemode=request.user.livemode, sender="+18045550142",
                       to="+18045550199", body=request.data.get("body", "hi"))
        raise RuntimeError("boom after the write")


urlpatterns.insert(0, path("v1/crash-after-write", CrashAfterWritingView.as_view()))
