"""Health check. The home page is catalog's (it shows the catalogue): accounts
imports no other app."""

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
@login_not_required
def health(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers: the database answers. Reveals nothing else."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
