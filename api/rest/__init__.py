"""The REST API under /api/v1/ (django-ninja; see core.py for why)."""

from api.rest import batches, products, taxonomy
from api.rest.core import api

api.add_router("", products.router)
api.add_router("", batches.router)
api.add_router("", taxonomy.router)

__all__ = ["api"]
