from django.http import HttpRequest

from accounts import roles as r


def roles(request: HttpRequest) -> dict:
    """Expose the user's roles so the nav shows only what they may open."""
    held = r.user_roles(request.user) if hasattr(request, "user") else frozenset()
    return {
        "roles": {
            "tagger": r.TAGGERS in held,
            "taxonomy_admin": r.TAXONOMY_ADMINS in held,
            "manager": r.MANAGERS in held,
            "any": bool(held),
        }
    }
