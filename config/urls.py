from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import views as account_views
from catalog import views as catalog_views

urlpatterns = [
    path("", catalog_views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("health/", account_views.health, name="health"),
    path("favicon.ico", account_views.favicon, name="favicon"),
    path("taxonomy/", include("catalog.taxonomy.urls")),
    path("", include("catalog.urls")),
    path("", include("annotator.urls")),
    path("", include("review.urls")),
    path("reports/", include("reports.urls")),
    path("prompts/", include("tuning.urls")),
    path("", include("api.urls")),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
