from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from catalog.selectors import catalog_summary


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Landing page: what the user may do, and the catalogue at a glance."""
    return render(request, "accounts/home.html", {"summary": catalog_summary()})


@require_GET
@login_not_required
def health(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers: the database answers. Reveals nothing else."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
