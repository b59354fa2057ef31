"""Control characters in user input: one rule for every form, search box and filter.

NUL and the other C0 control characters (and DEL) have no business in anything a person
types; tab, line feed and carriage return are allowed (text areas). PostgreSQL refuses NUL
in text, so before this rule such input ended in a 500.

- Query strings (search boxes, filters, paging) are never stored: the characters are
  stripped and the page shows what the person meant ("shi\\x00rt" searches "shirt").
- Submitted forms (POST) are refused before any view runs, so nothing is saved: a plain
  request gets a 400 page saying why; an htmx request gets the same message swapped into
  the page (htmx does not swap error responses), with nothing saved either.

Code that reads text another way (the JSON API) checks it with `control_characters_refuse`
(a Django validator: use it in forms, serializers or schemas).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MESSAGE = (
    "The form contains control characters (such as NUL) that cannot be saved. Nothing was "
    "saved: remove them (retype the text rather than pasting it) and try again."
)


def control_characters_find(text: str) -> bool:
    return _CONTROL.search(text) is not None


def control_characters_strip(text: str) -> str:
    return _CONTROL.sub("", text)


def control_characters_refuse(text: str) -> None:
    """Validator: refuse text holding control characters other than tab/LF/CR."""
    if control_characters_find(text):
        raise ValidationError(
            "Remove the control characters (such as NUL) from this text.",
            code="control_characters",
        )


def _cleaned_query(query: QueryDict) -> QueryDict | None:
    if not any(control_characters_find(key + "".join(query.getlist(key))) for key in query):
        return None
    cleaned = QueryDict(mutable=True)
    for key in query:
        cleaned.setlist(
            control_characters_strip(key),
            [control_characters_strip(value) for value in query.getlist(key)],
        )
    cleaned._mutable = False
    return cleaned


def _form_has_control_characters(request: HttpRequest) -> bool:
    return any(
        control_characters_find(key) or any(map(control_characters_find, request.POST.getlist(key)))
        for key in request.POST
    )


class ControlCharacterMiddleware:
    """Strips control characters from query strings; refuses form posts that hold them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view, args, kwargs) -> HttpResponse | None:
        # In process_view, after the login and CSRF checks of the middleware before it.
        cleaned = _cleaned_query(request.GET)
        if cleaned is not None:
            request.GET = cleaned
        if request.method == "POST" and _form_has_control_characters(request):
            return self._refused(request)
        return None

    def _refused(self, request: HttpRequest) -> HttpResponse:
        if request.headers.get("HX-Request") == "true":
            response = render(request, "input_refused.html#message", {"message": MESSAGE})
            response["HX-Retarget"] = "main"
            response["HX-Reswap"] = "afterbegin"
            return response
        return render(request, "input_refused.html", {"message": MESSAGE}, status=400)
