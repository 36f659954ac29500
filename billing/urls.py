from django.urls import path

from billing import views

urlpatterns = [
    path("pricing", views.PricingView.as_view(), name="pricing"),
    path("balance", views.BalanceView.as_view(), name="balance"),
    path("ledger", views.LedgerView.as_view(), name="ledger"),
]
