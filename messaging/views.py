from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.pricing import format_amount
from messaging import exports, selectors, services
from mittis.replica import replica_reads
from messaging.representation import message_json, message_row
from messaging.serializers import (
    ExportCreateSerializer, ExportSerializer, MessageCreateSerializer,
    MessageListParamsSerializer, MessagePreviewSerializer, MessageSerializer, OptOutSerializer,
    TestHelperDeliveryReportSerializer, TestHelperInboundMessageSerializer, UsageParamsSerializer,
)
from mittis.api.errors import error_response, url_not_found
from mittis.api.pagination import ListParamsSerializer, list_envelope, list_page, paginate
from mittis.api.schema import error_responses, list_response
from mittis.api.serializers import no_params
from mittis.errors import DomainError
from webhooks.serializers import EventSerializer

SEED_REQUEST = {"from": "+18045550142", "to": "+18045550199", "body": "Your technician is 15 minutes out."}
SEED_RESPONSE = {
    "object": "message", "id": "msg_4Zq8yXbV2nLwR7tKp1sHc9dE", "status": "queued", "direction": "outbound",
    "from": "+18045550142", "to": "+18045550199", "body": "Your technician is 15 minutes out.",
    "encoding": "GSM-7", "segments": 1, "price": "0.008", "currency": "USD", "metadata": {}, "status_callback": None,
    "error_code": None, "error_message": None, "retryable": None, "attempts": [], "send_at": None,
    "expires_at": "2026-06-12T18:03:22Z", "redacted_at": None,
    "created_at": "2026-06-12T14:03:22Z", "updated_at": "2026-06-12T14:03:22Z", "livemode": False,
}
ID_PARAMETER = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The message id (`msg_…`).")


def _message_json(message) -> dict:
    """The answer about one message, its attempts read in one query of their own."""
    return message_row(message, attempts=selectors.message_attempts(message=message))


def _messages_json(page: list[tuple[dict, list[dict]]]) -> list[dict]:
    return [message_json(message, attempts) for message, attempts in page]


class MessagesView(APIView):
    writes_in_one_statement = True  # a keyed POST's key is held and recorded in the send's statement

    @extend_schema(
        operation_id="messages_create",
        summary="Send a message",
        description=(
            "Accepts the message, prices it and queues it for sending: the answer is `201` with the "
            "message in status `queued`. Follow it with `GET /v1/messages/{id}` or its events.\n\n"
            "```\ncurl http://127.0.0.1:8000/v1/messages -H \"Authorization: Bearer $MITTIS_API_KEY\" \\\n"
            "  -H \"Content-Type: application/json\" \\\n"
            "  -d '{\"from\": \"+18045550142\", \"to\": \"+18045550199\", "
            "\"body\": \"Your technician is 15 minutes out.\"}'\n```"
        ),
        request=MessageCreateSerializer,
        responses={201: MessageSerializer, **error_responses(400, 401, 402, 413, 415)},
        examples=[
            OpenApiExample("Send a text", value=SEED_REQUEST, request_only=True),
            OpenApiExample("Queued", value=SEED_RESPONSE, response_only=True, status_codes=["201"]),
        ],
        tags=["Messages"],
    )
    def post(self, request):
        params = MessageCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        key = getattr(request, "idempotency", None)  # mittis.api.idempotency.KeyInStatement
        message = services.message_create(
            account=request.user.account, livemode=request.user.livemode, sender=data["from"], to=data["to"],
            body=data["body"], metadata=data["metadata"], status_callback=data["status_callback"],
            send_at=data["send_at"], validity_period=data["validity_period"], guard=key,
        )
        if key is not None and key.recorded:
            return key.recorded  # the very bytes a replay will give
        return Response(message.representation, status=status.HTTP_201_CREATED)  # built once, for its event too

    @extend_schema(
        operation_id="messages_list",
        summary="List messages",
        description="Your messages in this mode, newest first, filtered and paginated.",
        parameters=[MessageListParamsSerializer],
        responses={200: list_response(MessageSerializer, "MessageList"), **error_responses(400, 401)},
        tags=["Messages"],
    )
    @replica_reads()
    def get(self, request):
        params = MessageListParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data
        scope = selectors.message_scope(account=request.user.account, livemode=request.user.livemode)
        messages = selectors.message_list(
            account=request.user.account, livemode=request.user.livemode, status=query.get("status"),
            to=query.get("to"), sender=query.get("from"), direction=query.get("direction"),
            created_gte=query.get("created_gte"), created_lt=query.get("created_lt"),
        )
        # The page's ids chosen by the ORM, its messages and their attempts read by fixed SQL around them, in one
        # statement: compiling querysets of every field was most of a page's cost.
        page = paginate(messages.values_list("pk", flat=True), scope=scope, limit=query["limit"],
                        starting_after=query.get("starting_after"), ending_before=query.get("ending_before"),
                        read=selectors.message_page_values,
                        leading=selectors.message_list_order(status=query.get("status")))
        return list_envelope(request, page, MessageSerializer, represent_page=_messages_json)


class MessageDetailView(APIView):
    @extend_schema(
        operation_id="messages_retrieve",
        summary="Retrieve a message",
        parameters=[ID_PARAMETER],
        responses={200: MessageSerializer, **error_responses(401, 404)},
        tags=["Messages"],
    )
    def get(self, request, id: str):
        return Response(message_json(*selectors.message_values_get(
            account=request.user.account, livemode=request.user.livemode, public_id=id)))


class MessageEventsView(APIView):
    @extend_schema(
        operation_id="messages_events",
        summary="A message's timeline",
        description=(
            "Every event of the message, oldest first by `sequence` (a timeline reads forwards), each as "
            "`GET /v1/events/{id}` and webhooks give it: its `data` is the message as it was at that moment."
        ),
        parameters=[ID_PARAMETER],
        responses={200: list_response(EventSerializer, "MessageEventList"), **error_responses(401, 404)},
        tags=["Messages"],
    )
    def get(self, request, id: str):
        message = selectors.message_get(account=request.user.account, livemode=request.user.livemode,
                                        public_id=id)
        events = selectors.message_events(message=message)
        return Response({"object": "list", "url": request.path, "has_more": False,
                         "data": EventSerializer(events, many=True).data})


class MessagePreviewView(APIView):
    @extend_schema(
        operation_id="messages_preview",
        summary="Preview a message's encoding, segments and price",
        description=(
            "Takes the same body as `POST /v1/messages` and answers what sending it would do, without "
            "sending or charging: the encoding, the number of segments, the price and the destination's "
            "country. For a UCS-2 body, `non_gsm_characters` lists the characters that forced UCS-2. A send "
            "of the same body is charged exactly this price (unless the price table changes in between)."
        ),
        request=MessageCreateSerializer,
        responses={200: MessagePreviewSerializer, **error_responses(400, 401, 413, 415)},
        examples=[OpenApiExample("Preview a text", value=SEED_REQUEST, request_only=True)],
        tags=["Messages"],
    )
    def post(self, request):
        params = MessageCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        quote = services.message_preview(account=request.user.account, sender=data["from"], to=data["to"],
                                         body=data["body"])
        return Response(MessagePreviewSerializer(quote).data)


USAGE_ROW_FIELDS = {
    "day": serializers.DateField(required=False, help_text="With group_by=day."),
    "country": serializers.CharField(required=False, allow_null=True, help_text="With group_by=country."),
    "status": serializers.CharField(required=False, help_text="With group_by=status."),
    "messages": serializers.IntegerField(),
    "segments": serializers.IntegerField(),
    "amount": serializers.CharField(help_text="Decimal string: the price of these messages."),
}


class UsageView(APIView):
    @extend_schema(
        operation_id="usage_retrieve",
        summary="Usage by day, country or status",
        description=(
            "Outbound messages created in `[start, end)`, with their segments and the sum of their prices, "
            "grouped by UTC `day`, destination `country` or `status`. Refunds of failed messages appear in "
            "the ledger, not here."
        ),
        parameters=[UsageParamsSerializer],
        responses={200: inline_serializer("Usage", fields={
            "object": serializers.CharField(default="usage"),
            "start": serializers.DateTimeField(), "end": serializers.DateTimeField(),
            "group_by": serializers.CharField(), "currency": serializers.CharField(),
            "livemode": serializers.BooleanField(), "data": inline_serializer("UsageRow", fields=USAGE_ROW_FIELDS, many=True),
        }), **error_responses(400, 401)},
        tags=["Billing"],
    )
    @replica_reads()
    def get(self, request):
        params = UsageParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data
        rows = selectors.message_usage(account=request.user.account, livemode=request.user.livemode,
                                       start=query["start"], end=query["end"], group_by=query["group_by"])
        group_by = query["group_by"]
        data = [{group_by: _usage_key(group_by, row["group"]), "messages": row["messages"],
                 "segments": row["segments"], "amount": format_amount(row["amount"])} for row in rows]
        return Response({
            "object": "usage", "start": params.data["start"], "end": params.data["end"], "group_by": group_by,
            "currency": "USD", "livemode": request.user.livemode, "data": data,
        })


def _usage_key(group_by: str, value):
    if group_by == "day":
        return value.isoformat()
    return value or None  # a non-geographic number has no country


class OptOutsView(APIView):
    @extend_schema(
        operation_id="opt_outs_list",
        summary="List opt-outs",
        description=(
            "Numbers that replied STOP (or STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT) to one of "
            "your senders, or that a carrier refused a message to because they unsubscribed (`keyword` "
            "`CARRIER`), newest first. A send to one of them is refused with `422 recipient_opted_out`, "
            "uncharged, until the number replies START, UNSTOP or YES."
        ),
        parameters=[ListParamsSerializer],
        responses={200: list_response(OptOutSerializer, "OptOutList"), **error_responses(400, 401)},
        tags=["Messages"],
    )
    @replica_reads()
    def get(self, request):
        return list_page(request, scope=selectors.opt_out_scope(account=request.user.account,
                                                                livemode=request.user.livemode),
                         serializer_class=OptOutSerializer)


class MessageCancelView(APIView):
    @extend_schema(
        operation_id="messages_cancel",
        summary="Cancel a scheduled message",
        description="A `scheduled` message becomes `canceled`: it is refunded, never sent, and a "
                    "`message.canceled` event is sent. Any other status is `409 message_not_cancelable`.",
        parameters=[ID_PARAMETER], request=None,
        responses={200: MessageSerializer, **error_responses(401, 404, 409)},
        tags=["Messages"],
    )
    def post(self, request, id: str):
        message = selectors.message_get(account=request.user.account, livemode=request.user.livemode, public_id=id)
        no_params(request)
        message = services.message_cancel(message=message)
        return Response(_message_json(message))


class MessageRedactView(APIView):
    @extend_schema(
        operation_id="messages_redact",
        summary="Redact a message's body",
        description="Removes the body of a final message now, everywhere it is kept (the message, its events, "
                    "webhook payloads, exports): it reads as `null`, with `redacted_at` set. Status, segments and "
                    "price stay. Bodies are redacted anyway after your account's retention period (30 days by "
                    "default). A message still on its way is `409 message_not_redactable`.",
        parameters=[ID_PARAMETER], request=None,
        responses={200: MessageSerializer, **error_responses(401, 404, 409)},
        tags=["Messages"],
    )
    def post(self, request, id: str):
        message = selectors.message_get(account=request.user.account, livemode=request.user.livemode, public_id=id)
        no_params(request)
        message = services.message_redact(message=message)
        return Response(_message_json(message))


EXPORT_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The export id (`exp_…`).")


class ExportsView(APIView):
    @extend_schema(
        operation_id="exports_create",
        summary="Export messages or events",
        description=(
            "Starts an export of your messages or events created in [`start`, `end`), as CSV or NDJSON, in the "
            "background: the answer is `202` with the export, whose `status` and `progress` you follow with "
            "`GET /v1/exports/{id}`. NDJSON lines are exactly the API's objects; CSV columns are their fields "
            "in the API's order (null is an empty cell, booleans `true`/`false`, `metadata`, `attempts` and "
            "an event's `data` are JSON). Redacted bodies are `null`, in files written before the redaction too "
            "(`rewritten_at`). The file can be downloaded for 7 days. At most 3 of your exports (in this mode) "
            "may be pending or running at once: beyond that, `429 too_many_exports` with `Retry-After`."
        ),
        request=ExportCreateSerializer,
        responses={202: ExportSerializer, **error_responses(400, 401, 429)},
        tags=["Exports"],
    )
    def post(self, request):
        params = ExportCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = dict(params.validated_data)
        filters = {name: data.pop(name) for name in ("status", "direction", "event_type") if name in data}
        try:
            export = exports.export_create(account=request.user.account, livemode=request.user.livemode,
                                           filters=filters, **data)
        except exports.TooManyExports as busy:
            response = error_response(request, busy.code, busy.message)
            response["Retry-After"] = str(exports.BUSY_RETRY_AFTER)
            return response
        return Response(ExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="exports_list", summary="List exports", parameters=[ListParamsSerializer],
        responses={200: list_response(ExportSerializer, "ExportList"), **error_responses(400, 401)},
        tags=["Exports"],
    )
    def get(self, request):
        return list_page(request, scope=selectors.export_scope(account=request.user.account,
                                                               livemode=request.user.livemode),
                         serializer_class=ExportSerializer)


class ExportDetailView(APIView):
    @extend_schema(operation_id="exports_retrieve", summary="Retrieve an export", parameters=[EXPORT_ID],
                   responses={200: ExportSerializer, **error_responses(401, 404)}, tags=["Exports"])
    def get(self, request, id: str):
        export = selectors.export_get(account=request.user.account, livemode=request.user.livemode, public_id=id)
        return Response(ExportSerializer(export).data)


class ExportDownloadView(APIView):
    @extend_schema(
        operation_id="exports_download", summary="Download an export's file",
        description="Streams the file (`text/csv` or `application/x-ndjson`), gzipped when the request says "
                    "`Accept-Encoding: gzip`. `409 export_not_ready` before it has succeeded, and for the few "
                    "seconds its file is re-written after a redaction; `410 export_expired` once its file was deleted.",
        parameters=[EXPORT_ID], responses={(200, "application/octet-stream"): bytes,
                                           **error_responses(401, 404, 409, 410)},
        tags=["Exports"],
    )
    def get(self, request, id: str):
        export = selectors.export_get(account=request.user.account, livemode=request.user.livemode, public_id=id)
        if export.file_deleted_at:
            raise DomainError("export_expired")
        if export.status != export.SUCCEEDED:
            raise DomainError("export_not_ready", f"The export is {export.status}; download it once it has succeeded.")
        if export.redactions_pending:
            raise DomainError("export_not_ready", "The export's file is being re-written without the bodies of "
                                                  "messages redacted since it was made; download it in a few seconds.")
        gzip = "gzip" in request.headers.get("Accept-Encoding", "")
        response = StreamingHttpResponse(exports.export_file_chunks(export, gzip=gzip),
                                         content_type="text/csv; charset=utf-8" if export.format == "csv"
                                         else "application/x-ndjson; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{export.public_id}.{export.format}"'
        response["Vary"] = "Accept-Encoding"
        if gzip:
            response["Content-Encoding"] = "gzip"
        else:
            response["Content-Length"] = str(export.file_size)
        return response


# --- Test helpers ---------------------------------------------------------------------------------
TEST_HELPERS = "Test helpers"


class TestModeOnly(BasePermission):
    """The test helpers exist in test mode only: to a live key they are not there at all, and answer as a URL no
    endpoint has does (after authentication: a missing or unknown key is a 401, as anywhere)."""

    def has_permission(self, request, view) -> bool:
        if request.user.livemode:
            raise url_not_found(request)
        return True


class TestHelperView(APIView):
    permission_classes = [IsAuthenticated, TestModeOnly]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.user is not None and request.user.livemode:
            del response["Allow"]  # DRF's, which would tell a live key that this URL exists after all
        return response


class TestHelperInboundMessagesView(TestHelperView):

    @extend_schema(
        operation_id="test_helpers_inbound_messages_create",
        summary="Receive a test inbound message",
        description=(
            "**Test mode only** (a live key gets `404 url_not_found`, as for a URL that does not exist). A phone "
            "texts `body` from `from` to `to`, one of your senders, and the sandbox carrier hands it over exactly "
            "as a carrier would: the answer is `201` with the `received` inbound message, and a `message.inbound` "
            "event goes to your webhook endpoints. STOP (STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT) "
            "opts `from` out (`GET /v1/opt_outs`; sends to it are `422 recipient_opted_out`), START (UNSTOP, YES) "
            "opts it back in, and HELP (INFO) is answered with your account's help reply, if it has one. A `to` "
            "that is not one of your senders is `400 unknown_sender`."
        ),
        request=TestHelperInboundMessageSerializer,
        responses={201: MessageSerializer, **error_responses(400, 401, 404, 413, 415)},
        examples=[OpenApiExample("A phone replies STOP", request_only=True,
                                 value={"from": "+18045550199", "to": "+18045550142", "body": "STOP"})],
        tags=[TEST_HELPERS],
    )
    def post(self, request):
        params = TestHelperInboundMessageSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        message = services.sandbox_message_receive(account=request.user.account, sender=data["from"], to=data["to"],
                                                   body=data["body"])
        return Response(_message_json(message), status=status.HTTP_201_CREATED)


class TestHelperDeliveryReportView(TestHelperView):

    @extend_schema(
        operation_id="test_helpers_messages_delivery_report",
        summary="Report a test message's delivery",
        description=(
            "**Test mode only** (a live key gets `404 url_not_found`, as for a URL that does not exist). The sandbox "
            "carrier reports the outcome of a `sent` message now, through the same path as a carrier's delivery "
            "report: the answer is `200` with the message in its new status (`delivered_at`, `undelivered_at` or "
            "`failed_at` set; a failure's `error_code`, `error_message` and `retryable`), and its `message.delivered` "
            "or `message.failed` event goes to your webhook endpoints. Made for messages to `+15005550003`, which "
            "the sandbox never reports on; any other sent message works too (the sandbox's own report, arriving "
            "later, is then ignored: a final status never changes). A message not sent yet (`scheduled`, `queued`, "
            "`sending`) or inbound is `409 message_not_sent`; one in a final status `409 message_already_final`."
        ),
        parameters=[ID_PARAMETER],
        request=TestHelperDeliveryReportSerializer,
        responses={200: MessageSerializer, **error_responses(400, 401, 404, 409, 413, 415)},
        examples=[OpenApiExample("Undelivered: the handset is off", request_only=True,
                                 value={"status": "undelivered", "error_code": "unreachable"})],
        tags=[TEST_HELPERS],
    )
    def post(self, request, id: str):
        message = selectors.message_get(account=request.user.account, livemode=request.user.livemode, public_id=id)
        params = TestHelperDeliveryReportSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        message = services.sandbox_delivery_report(message=message, status=data["status"],
                                                   error_code=data["error_code"] or "")
        return Response(_message_json(message))
