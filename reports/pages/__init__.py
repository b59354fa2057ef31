"""The report pages as data, one module per report: key figures, charts and
tables built from the selectors' aggregates. The views render them as HTML or
CSV; both read the same Table objects, so the download matches the page."""

from reports.pages.base import Inputs, Report, Section
from reports.pages.cost import cost
from reports.pages.overview import overview
from reports.pages.people import people
from reports.pages.quality import quality
from reports.pages.throughput import throughput

__all__ = ["Inputs", "Report", "Section", "cost", "overview", "people", "quality", "throughput"]
