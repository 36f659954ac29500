from django.urls import path

from webhooks import views

urlpatterns = [
    path("webhook_endpoints", views.WebhookEndpointsView.as_view(), name="webhook-endpoints"),
    path("webhook_endpoints/<str:id>", views.WebhookEndpointDetailView.as_view(), name="webhook-endpoint"),
    path("webhook_endpoints/<str:id>/rotate_secret", views.WebhookEndpointRotateSecretView.as_view(),
         name="webhook-endpoint-rotate-secret"),
    path("webhook_endpoints/<str:id>/deliveries", views.WebhookEndpointDeliveriesView.as_view(),
         name="webhook-endpoint-deliveries"),
    path("webhook_endpoints/<str:id>/recover", views.WebhookEndpointRecoverView.as_view(),
         name="webhook-endpoint-recover"),
    path("events", views.EventsView.as_view(), name="events"),
    path("events/<str:id>", views.EventDetailView.as_view(), name="event"),
    path("events/<str:id>/redeliver", views.EventRedeliverView.as_view(), name="event-redeliver"),
    path("callback_secret", views.CallbackSecretView.as_view(), name="callback-secret"),
    path("callback_secret/rotate", views.CallbackSecretRotateView.as_view(), name="callback-secret-rotate"),
]
