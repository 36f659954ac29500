from django.urls import path

from messaging import views

urlpatterns = [
    path("messages", views.MessagesView.as_view(), name="messages"),
    path("messages/preview", views.MessagePreviewView.as_view(), name="message-preview"),
    path("usage", views.UsageView.as_view(), name="usage"),
    path("opt_outs", views.OptOutsView.as_view(), name="opt-outs"),
    path("exports", views.ExportsView.as_view(), name="exports"),
    path("exports/<public_id:id>", views.ExportDetailView.as_view(), name="export"),
    path("exports/<public_id:id>/download", views.ExportDownloadView.as_view(), name="export-download"),
    path("messages/<public_id:id>", views.MessageDetailView.as_view(), name="message-detail"),
    path("messages/<public_id:id>/events", views.MessageEventsView.as_view(), name="message-events"),
    path("messages/<public_id:id>/cancel", views.MessageCancelView.as_view(), name="message-cancel"),
    path("messages/<public_id:id>/redact", views.MessageRedactView.as_view(), name="message-redact"),
    path("test_helpers/inbound_messages", views.TestHelperInboundMessagesView.as_view(),
         name="test-helpers-inbound-messages"),
    path("test_helpers/messages/<public_id:id>/delivery_report", views.TestHelperDeliveryReportView.as_view(),
         name="test-helpers-delivery-report"),
]
