"""The taxonomy's names, synonyms and paths for the review form's type-ahead,
as JSON loaded once per taxonomy version.

The URL carries the version (a digest of the vocabulary's signature), so the
response never changes and the browser keeps it (`immutable`); an edited
taxonomy gets a new URL on the next full page. The item fragments that htmx
swaps in carry only the item."""

from __future__ import annotations

import hashlib

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET

from accounts.roles import TAGGERS, TAXONOMY_ADMINS, role_required
from catalog.taxonomy.vocabulary import Vocabulary, vocabulary_current

YEAR = 365 * 24 * 3600


def terms_version(vocabulary: Vocabulary) -> str:
    return hashlib.sha256(vocabulary.signature.encode()).hexdigest()[:16]


def terms_url() -> str:
    return reverse("review_terms", args=[terms_version(vocabulary_current())])


@require_GET
@role_required(TAGGERS, TAXONOMY_ADMINS)
def review_terms(request: HttpRequest, version: str) -> HttpResponse:
    vocabulary = vocabulary_current()
    current = terms_version(vocabulary)
    if version != current:
        # A page from before a taxonomy edit: the current list, by its own URL.
        response = redirect("review_terms", current)
        add_never_cache_headers(response)
        return response
    etag = f'"{current}"'
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = JsonResponse(
            {
                "version": current,
                # path, name, synonyms: the type-ahead ranks on all three
                "category": [
                    [term.path, term.name, list(term.synonyms)] for term in vocabulary.categories
                ],
                "attributes": {
                    code: [[value.name, value.name, list(value.synonyms)] for value in values]
                    for code, values in vocabulary.attributes.items()
                },
            }
        )
    response["ETag"] = etag
    response["Cache-Control"] = f"private, max-age={YEAR}, immutable"
    return response
