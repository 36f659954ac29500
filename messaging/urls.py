from django.urls import path

from messaging import views

urlpatterns = [
    path("messages", views.MessagesView.as_view(), name="messages"),
    path("messages/preview", views.MessagePreviewView.as_view(), name="message-preview"),
    path("usage", views.UsageView.as_view(), name="usage"),
    path("opt_outs", views.OptOutsView.as_view(), name="opt-outs"),
    path("exports", views.ExportsView.as_view(), name="exports"),
    path("exports/<str:id>", views.ExportDetailView.as_view(), name="export"),
    path("exports/<str:id>/download", views.ExportDownloadView.as_view(), name="export-download"),
    path("messages/<str:id>", views.MessageDetailView.as_view(), name="message-detail"),
    path("messages/<str:id>/events", views.MessageEventsView.as_view(), name="message-events"),
    path("messages/<str:id>/cancel", views.MessageCancelView.as_view(), name="message-cancel"),
    path("messages/<str:id>/redact", views.MessageRedactView.as_view(), name="message-redact"),
]
