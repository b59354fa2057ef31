"""Taxonomy administration: the category tree and attribute vocabulary as
services (services/), reads (selectors.py), the admin screen (views.py,
urls.py mounted at /taxonomy/), the file formats (formats.py: Loupe JSON/CSV,
Google) and the vocabulary the pipeline matches answers against
(vocabulary.py). The models stay in catalog/models.py."""
