from django.urls import path

from messaging import views

urlpatterns = [
    path("messages", views.MessagesView.as_view(), name="messages"),
    path("messages/<str:id>", views.MessageDetailView.as_view(), name="message-detail"),
    path("messages/<str:id>/events", views.MessageEventsView.as_view(), name="message-events"),
]
