from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("throughput/", views.throughput, name="throughput"),
    path("people/", views.people, name="people"),
    path("quality/", views.quality, name="quality"),
    path("cost/", views.cost, name="cost"),
]
