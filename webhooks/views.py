from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mittis.api.pagination import ListParamsSerializer, list_envelope, list_page, paginate
from mittis.api.schema import error_responses, list_response
from mittis.replica import replica_reads
from mittis.api.serializers import no_params
from webhooks import selectors, services
from webhooks.serializers import (
    CallbackSecretSerializer, DeliveryAttemptSerializer, EndpointCreateSerializer, EndpointDeletedSerializer,
    EndpointSerializer, EndpointUpdateSerializer, EndpointWithSecretSerializer, EventListParamsSerializer,
    EventSerializer, RecoverSerializer, RedeliverSerializer,
)

ENDPOINT_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The endpoint id (`we_…`).")
EVENT_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The event id (`evt_…`).")
TAGS = ["Webhooks"]


def _with_secret(created: services.EndpointWithSecret) -> dict:
    return {**EndpointSerializer(created.endpoint).data, "secret": created.secret}


def _endpoint(request, id: str):
    return selectors.endpoint_get(account=request.user.account, livemode=request.user.livemode, public_id=id)


class WebhookEndpointsView(APIView):
    @extend_schema(operation_id="webhook_endpoints_create", summary="Create a webhook endpoint",
                   description="Events of this mode are POSTed to `url`, signed with the `secret` that "
                               "only this answer shows. See the webhooks guide above.",
                   request=EndpointCreateSerializer,
                   responses={201: EndpointWithSecretSerializer, **error_responses(400, 401)}, tags=TAGS)
    def post(self, request):
        params = EndpointCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        created = services.endpoint_create(account=request.user.account, livemode=request.user.livemode,
                                           **params.validated_data)
        return Response(_with_secret(created), status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="webhook_endpoints_list", summary="List webhook endpoints",
                   parameters=[ListParamsSerializer],
                   responses={200: list_response(EndpointSerializer, "WebhookEndpointList"),
                              **error_responses(400, 401)}, tags=TAGS)
    def get(self, request):
        return list_page(request, scope=selectors.endpoint_scope(account=request.user.account,
                                                                 livemode=request.user.livemode),
                         serializer_class=EndpointSerializer)


class WebhookEndpointDetailView(APIView):
    @extend_schema(operation_id="webhook_endpoints_retrieve", summary="Retrieve a webhook endpoint",
                   parameters=[ENDPOINT_ID], responses={200: EndpointSerializer, **error_responses(401, 404)},
                   tags=TAGS)
    def get(self, request, id):
        return Response(EndpointSerializer(_endpoint(request, id)).data)

    @extend_schema(operation_id="webhook_endpoints_update", summary="Update a webhook endpoint",
                   description="Change the URL, description or events, or disable and re-enable it "
                               "(re-enabling forgets earlier failures).",
                   parameters=[ENDPOINT_ID], request=EndpointUpdateSerializer,
                   responses={200: EndpointSerializer, **error_responses(400, 401, 404)}, tags=TAGS)
    def patch(self, request, id):
        endpoint = _endpoint(request, id)
        params = EndpointUpdateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, **params.validated_data)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(operation_id="webhook_endpoints_delete", summary="Delete a webhook endpoint",
                   parameters=[ENDPOINT_ID], responses={200: EndpointDeletedSerializer, **error_responses(401, 404)},
                   tags=TAGS)
    def delete(self, request, id):
        endpoint = _endpoint(request, id)
        services.endpoint_delete(endpoint=endpoint)
        return Response({"object": "webhook_endpoint", "id": id, "deleted": True})


class WebhookEndpointRotateSecretView(APIView):
    @extend_schema(operation_id="webhook_endpoints_rotate_secret", summary="Rotate an endpoint's secret",
                   description="Returns the new secret, once. For 24 hours the old secret keeps signing "
                               "beside it (two signatures in `webhook-signature`), so receivers can switch over.",
                   parameters=[ENDPOINT_ID], request=None,
                   responses={200: EndpointWithSecretSerializer, **error_responses(401, 404)}, tags=TAGS)
    def post(self, request, id):
        endpoint = _endpoint(request, id)
        no_params(request)
        return Response(_with_secret(services.endpoint_rotate_secret(endpoint=endpoint)))


class WebhookEndpointDeliveriesView(APIView):
    @extend_schema(operation_id="webhook_endpoints_deliveries", summary="List an endpoint's delivery attempts",
                   description="Every request made to the endpoint, newest first: when, the HTTP status, the "
                               "latency, the first 2 KB of the answer, or why none came.",
                   parameters=[ENDPOINT_ID, ListParamsSerializer],
                   responses={200: list_response(DeliveryAttemptSerializer, "WebhookDeliveryList"),
                              **error_responses(400, 401, 404)}, tags=TAGS)
    def get(self, request, id):
        endpoint = _endpoint(request, id)  # from the primary: an endpoint created a moment ago is found
        with replica_reads():
            return list_page(request, scope=selectors.attempt_scope(endpoint=endpoint),
                             serializer_class=DeliveryAttemptSerializer)


class WebhookEndpointRecoverView(APIView):
    @extend_schema(operation_id="webhook_endpoints_recover", summary="Recover failed events",
                   description="Sends again, in the background, every event of the window that this endpoint "
                               "was sent and never accepted. Events it accepted, and events still being "
                               "retried, are not sent again.",
                   parameters=[ENDPOINT_ID], request=RecoverSerializer,
                   responses={202: inline_serializer("WebhookRecovery", fields={
                       "object": serializers.CharField(default="webhook_recovery"),
                       "endpoint": serializers.CharField(), "since": serializers.DateTimeField(),
                       "until": serializers.DateTimeField(), "status": serializers.CharField(default="queued")}),
                       **error_responses(400, 401, 404)}, tags=TAGS)
    def post(self, request, id):
        endpoint = _endpoint(request, id)
        params = RecoverSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        since = params.validated_data["since"]
        until = params.validated_data.get("until") or timezone.now()
        services.endpoint_recover_request(endpoint_id=endpoint.pk, since=since, until=until)
        return Response({"object": "webhook_recovery", "endpoint": endpoint.public_id,
                         "since": serializers.DateTimeField().to_representation(since),
                         "until": serializers.DateTimeField().to_representation(until), "status": "queued"},
                        status=status.HTTP_202_ACCEPTED)


class EventsView(APIView):
    @extend_schema(operation_id="events_list", summary="List events",
                   description="Every event of this mode, newest first, as webhooks deliver them.",
                   parameters=[EventListParamsSerializer],
                   responses={200: list_response(EventSerializer, "EventList"), **error_responses(400, 401)},
                   tags=TAGS)
    @replica_reads()
    def get(self, request):
        params = EventListParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data
        scope = selectors.event_scope(account=request.user.account, livemode=request.user.livemode)
        events = selectors.event_scope(account=request.user.account, livemode=request.user.livemode,
                                       type=query.get("type"), created_gte=query.get("created_gte"),
                                       created_lt=query.get("created_lt"))
        page = paginate(events, scope=scope, limit=query["limit"], starting_after=query.get("starting_after"),
                        ending_before=query.get("ending_before"))
        return list_envelope(request, page, EventSerializer)


class EventDetailView(APIView):
    @extend_schema(operation_id="events_retrieve", summary="Retrieve an event", parameters=[EVENT_ID],
                   responses={200: EventSerializer, **error_responses(401, 404)}, tags=TAGS)
    def get(self, request, id):
        event = selectors.event_get(account=request.user.account, livemode=request.user.livemode, public_id=id)
        return Response(EventSerializer(event).data)


class EventRedeliverView(APIView):
    @extend_schema(operation_id="events_redeliver", summary="Redeliver an event",
                   description="Sends the event again, with the same `webhook-id`, to one endpoint or to every "
                               "enabled endpoint subscribed to its type.",
                   parameters=[EVENT_ID], request=RedeliverSerializer,
                   responses={202: inline_serializer("EventRedelivery", fields={
                       "object": serializers.CharField(default="event_redelivery"), "event": serializers.CharField(),
                       "endpoints": serializers.ListField(child=serializers.CharField())}),
                       **error_responses(400, 401, 404)}, tags=TAGS)
    def post(self, request, id):
        event = selectors.event_get(account=request.user.account, livemode=request.user.livemode, public_id=id)
        params = RedeliverSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        endpoint = None
        if params.validated_data.get("endpoint"):
            endpoint = selectors.endpoint_get(account=request.user.account, livemode=request.user.livemode,
                                              public_id=params.validated_data["endpoint"], field="endpoint")
        deliveries = services.event_redeliver(event=event, endpoint=endpoint)
        return Response({"object": "event_redelivery", "event": event.public_id,
                         "endpoints": [d.endpoint.public_id for d in deliveries]}, status=status.HTTP_202_ACCEPTED)


class CallbackSecretView(APIView):
    @extend_schema(operation_id="callback_secret_retrieve", summary="Retrieve the status callback secret",
                   description="The secret that signs the requests to messages' `status_callback` URLs in this "
                               "mode, the same way endpoints' requests are signed.",
                   responses={200: CallbackSecretSerializer, **error_responses(401)}, tags=TAGS)
    def get(self, request):
        holder = services.callback_secret_get(account_id=request.user.account.pk, livemode=request.user.livemode)
        return Response({"object": "callback_secret", "secret": services.signing_secrets(holder)[0],
                         "livemode": request.user.livemode})


class CallbackSecretRotateView(APIView):
    @extend_schema(operation_id="callback_secret_rotate", summary="Rotate the status callback secret",
                   description="A new secret; the old one keeps signing beside it for 24 hours.",
                   request=None, responses={200: CallbackSecretSerializer, **error_responses(401)}, tags=TAGS)
    def post(self, request):
        no_params(request)
        secret = services.callback_secret_rotate(account_id=request.user.account.pk, livemode=request.user.livemode)
        return Response({"object": "callback_secret", "secret": secret, "livemode": request.user.livemode})
