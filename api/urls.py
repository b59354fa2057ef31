from django.contrib.auth.decorators import login_not_required
from django.urls import path

from api import views
from api.rest import api


def _api_urls():
    """The API authenticates each request itself (token or session) and
    answers 401 in JSON, so the global login redirect must not apply."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        pattern.callback = login_not_required(pattern.callback)
    return patterns, app_name, namespace


urlpatterns = [
    path("api/v1/", _api_urls()),
    path("settings/tokens/", views.token_list, name="token_list"),
    path("settings/tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
    path("settings/webhooks/", views.webhook_list, name="webhook_list"),
    path("settings/webhooks/<int:pk>/", views.webhook_detail, name="webhook_detail"),
    path("settings/webhooks/<int:pk>/enable/", views.webhook_enable, name="webhook_enable"),
    path(
        "settings/webhooks/deliveries/<int:pk>/resend/",
        views.webhook_resend,
        name="webhook_resend",
    ),
    path("products/export/", views.product_export, name="product_export"),
]
