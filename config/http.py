from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """Type of the request in views: django-htmx's middleware adds `htmx`."""

    htmx: HtmxDetails
