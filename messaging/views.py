from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging import selectors, services
from messaging.serializers import (
    MessageCreateSerializer, MessageEventSerializer, MessageListParamsSerializer, MessageSerializer,
)
from mittis.api.pagination import paginate
from mittis.api.schema import error_responses, list_response

SEED_REQUEST = {"from": "+18045550142", "to": "+18045550199", "body": "Your technician is 15 minutes out."}
SEED_RESPONSE = {
    "object": "message", "id": "msg_4Zq8yXbV2nLwR7tKp1sHc9dE", "status": "queued", "direction": "outbound",
    "from": "+18045550142", "to": "+18045550199", "body": "Your technician is 15 minutes out.",
    "encoding": "GSM-7", "segments": 1, "price": "0.008", "currency": "USD", "metadata": {},
    "error_code": None, "error_message": None,
    "created_at": "2026-06-12T14:03:22Z", "updated_at": "2026-06-12T14:03:22Z", "livemode": False,
}
ID_PARAMETER = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The message id (`msg_…`).")


class MessagesView(APIView):
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
        responses={201: MessageSerializer, **error_responses(400, 401, 415)},
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
        message = services.message_create(
            account=request.user.account, livemode=request.user.livemode, sender=data["from"], to=data["to"],
            body=data["body"], metadata=data["metadata"],
        )
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="messages_list",
        summary="List messages",
        description="Your messages in this mode, newest first, filtered and paginated.",
        parameters=[MessageListParamsSerializer],
        responses={200: list_response(MessageSerializer, "MessageList"), **error_responses(400, 401)},
        tags=["Messages"],
    )
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
        page = paginate(messages, scope=scope, limit=query["limit"], starting_after=query.get("starting_after"),
                        ending_before=query.get("ending_before"))
        return Response({"object": "list", "url": request.path, "has_more": page.has_more,
                         "data": MessageSerializer(page.items, many=True).data})


class MessageDetailView(APIView):
    @extend_schema(
        operation_id="messages_retrieve",
        summary="Retrieve a message",
        parameters=[ID_PARAMETER],
        responses={200: MessageSerializer, **error_responses(401, 404)},
        tags=["Messages"],
    )
    def get(self, request, id: str):
        message = selectors.message_get(account=request.user.account, livemode=request.user.livemode,
                                        public_id=id)
        return Response(MessageSerializer(message).data)


class MessageEventsView(APIView):
    @extend_schema(
        operation_id="messages_events",
        summary="A message's timeline",
        description=(
            "Every event of the message, oldest first by `sequence` (a timeline reads forwards). Each "
            "event's `data` is the message as it was at that moment."
        ),
        parameters=[ID_PARAMETER],
        responses={200: list_response(MessageEventSerializer, "MessageEventList"), **error_responses(401, 404)},
        tags=["Messages"],
    )
    def get(self, request, id: str):
        message = selectors.message_get(account=request.user.account, livemode=request.user.livemode,
                                        public_id=id)
        events = selectors.message_events(message=message)
        return Response({"object": "list", "url": request.path, "has_more": False,
                         "data": MessageEventSerializer(events, many=True).data})
