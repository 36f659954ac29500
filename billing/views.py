from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors
from billing.serializers import BalanceSerializer, LedgerEntrySerializer, PriceTableSerializer
from mittis.api.pagination import ListParamsSerializer, list_page
from mittis.api.schema import error_responses, list_response


class PricingView(APIView):
    authentication_classes = []  # public: prices are known before signing up
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="pricing_retrieve",
        summary="The price table",
        description=(
            "Flat prices per segment: one per destination country that has its own, and a default for "
            "every other country. A message costs `segments x price` of its destination's country, known "
            "before it is sent (`POST /v1/messages/preview`). Announced changes are listed in `upcoming`; "
            "a change never alters the price of a message already accepted. No API key needed."
        ),
        responses={200: PriceTableSerializer},
        auth=[],
        tags=["Billing"],
    )
    def get(self, request):
        return Response(PriceTableSerializer(selectors.price_table()).data)


class BalanceView(APIView):
    @extend_schema(
        operation_id="balance_retrieve",
        summary="Your prepaid balance",
        description="What is left to pay for live messages. Test mode is never charged and has its own balance.",
        responses={200: BalanceSerializer, **error_responses(401)},
        tags=["Billing"],
    )
    def get(self, request):
        balance = selectors.balance_get(account_id=request.user.account.pk, livemode=request.user.livemode)
        return Response(BalanceSerializer(balance).data)


class LedgerView(APIView):
    @extend_schema(
        operation_id="ledger_list",
        summary="The ledger",
        description=(
            "Every movement of your balance, newest first: `top_up`, `charge` (a message accepted), "
            "`refund` (a message that failed before any carrier accepted it) and `adjustment` (by our "
            "staff, with a reason). The balance is always the sum of the ledger."
        ),
        parameters=[ListParamsSerializer],
        responses={200: list_response(LedgerEntrySerializer, "LedgerEntryList"), **error_responses(400, 401)},
        tags=["Billing"],
    )
    def get(self, request):
        return list_page(request, scope=selectors.ledger_scope(account_id=request.user.account.pk,
                                                               livemode=request.user.livemode),
                         serializer_class=LedgerEntrySerializer)
