from django.urls import path

from webhooks import views

urlpatterns = [
    path("webhook_endpoints", views.WebhookEndpointsView.as_view(), name="webhook-endpoints"),
    path("webhook_endpoints/<public_id:id>", views.WebhookEndpointDetailView.as_view(), name="webhook-endpoint"),
    path("webhook_endpoints/<public_id:id>/rotate_secret", views.WebhookEndpointRotateSecretView.as_view(),
         name="webhook-endpoint-rotate-secret"),
    path("webhook_endpoints/<public_id:id>/deliveries", views.WebhookEndpointDeliveriesView.as_view(),
         name="webhook-endpoint-deliveries"),
    path("webhook_endpoints/<public_id:id>/recover", views.WebhookEndpointRecoverView.as_view(),
         name="webhook-endpoint-recover"),
    path("events", views.EventsView.as_view(), name="events"),
    path("events/<public_id:id>", views.EventDetailView.as_view(), name="event"),
    path("events/<public_id:id>/redeliver", views.EventRedeliverView.as_view(), name="event-redeliver"),
    path("callback_secret", views.CallbackSecretView.as_view(), name="callback-secret"),
    path("callback_secret/rotate", views.CallbackSecretRotateView.as_view(), name="callback-secret-rotate"),
]
