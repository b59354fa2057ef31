"""Health check and favicon. The home page is catalog's (it shows the
catalogue): accounts imports no other app."""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
@login_not_required
def health(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers: the database answers. Reveals nothing else."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@require_GET
@login_not_required
def favicon(request: HttpRequest) -> FileResponse:
    """/favicon.ico, which browsers ask for on every site whatever the page says."""
    response = FileResponse(
        open(settings.BASE_DIR / "static" / "favicon.ico", "rb"),  # noqa: SIM115 - FileResponse closes it
        content_type="image/x-icon",
    )
    response["Cache-Control"] = "public, max-age=86400"
    return response
