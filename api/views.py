"""Pages: personal API tokens, webhook endpoints with their delivery log,
and the product export download."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import ALL_ROLES, MANAGERS, TAXONOMY_ADMINS, role_required
from api.forms import ExportForm, TokenForm, WebhookForm
from api.models import ApiToken, WebhookDelivery, WebhookEndpoint
from api.services.exports import CONTENT_TYPES, EXTENSIONS, export_lines, export_queryset
from api.services.tokens import api_token_create, api_token_revoke, api_tokens_of
from api.services.webhooks import (
    WebhookError,
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_endpoint_enable,
)
from catalog.models import Category, Product
from catalog.selectors import product_list_queryset
from config.http import HtmxHttpRequest

WEBHOOK_ADMINS = (MANAGERS, TAXONOMY_ADMINS)  # superusers hold every role
LOG_SIZE = 100


@require_http_methods(["GET", "POST"])
@role_required(*ALL_ROLES)
def token_list(request: HtmxHttpRequest) -> HttpResponse:
    """The user's own tokens; a new token's secret is shown on this response only."""
    form = TokenForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        token, secret = api_token_create(user=request.user, name=form.cleaned_data["name"])
        form = TokenForm()
    response = render(
        request,
        "api/token_list.html",
        {"form": form, "tokens": api_tokens_of(user=request.user), "secret": secret},
    )
    response["Cache-Control"] = "no-store"  # the secret must not sit in a cache
    return response


@require_POST
@role_required(*ALL_ROLES)
def token_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if api_token_revoke(user=request.user, token_id=token.pk):
        messages.success(request, f"Token {token.prefix}… revoked.")
    return redirect("token_list")


@require_http_methods(["GET", "POST"])
@role_required(*WEBHOOK_ADMINS)
def webhook_list(request: HtmxHttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = webhook_endpoint_create(
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                description=form.cleaned_data["description"],
                user=request.user,
            )
        except WebhookError as exc:
            form.add_error("url", str(exc))
        else:
            form = WebhookForm()
    response = render(
        request,
        "api/webhook_list.html",
        {"form": form, "endpoints": WebhookEndpoint.objects.all(), "secret": secret},
    )
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@role_required(*WEBHOOK_ADMINS)
def webhook_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    deliveries = endpoint.deliveries.select_related("event")[:LOG_SIZE]
    context = {"endpoint": endpoint, "deliveries": deliveries}
    if request.htmx:
        return render(request, "api/webhook_detail.html#log", context)
    return render(request, "api/webhook_detail.html", context)


@require_POST
@role_required(*WEBHOOK_ADMINS)
def webhook_resend(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(WebhookDelivery, pk=pk)
    with transaction.atomic():
        webhook_delivery_resend(delivery=delivery)
    messages.success(request, f"Delivery #{delivery.pk} queued to be sent again.")
    return redirect("webhook_detail", pk=delivery.endpoint_id)


@require_POST
@role_required(*WEBHOOK_ADMINS)
def webhook_enable(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    webhook_endpoint_enable(endpoint=endpoint)
    messages.success(request, f"{endpoint.url} enabled again.")
    return redirect("webhook_detail", pk=endpoint.pk)


@require_GET
@role_required(MANAGERS, TAXONOMY_ADMINS)
def product_export(request: HtmxHttpRequest) -> HttpResponse:
    """The product list's current filters, streamed in the chosen format.
    Without a status filter, products with final values are exported."""
    form = ExportForm(request.GET)
    if not form.is_valid():
        return HttpResponse("Choose an export format: csv, jsonl or google-merchant.", status=400)
    data = form.cleaned_data
    category = None
    if data["category"] is not None:
        category = Category.objects.filter(pk=data["category"]).first()
    status = data["status"] if data["status"] in Product.Status.values else ""
    base = product_list_queryset(query=(data["q"] or "").strip(), category=category)
    products = export_queryset(statuses=[status] if status else None, base=base)
    fmt = data["format"]
    response = StreamingHttpResponse(
        export_lines(fmt=fmt, products=products), content_type=CONTENT_TYPES[fmt]
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = (
        f'attachment; filename="loupe-products-{stamp}.{EXTENSIONS[fmt]}"'
    )
    return response
