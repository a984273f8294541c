"""HTML and Markdown reports assembled from results."""

from coopml.reports.market import market_report

__all__ = ["market_report"]
