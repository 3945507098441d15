"""Reports of finished runs: an HTML page with plots and a Markdown summary."""

from hwcompress.report.page import Report, write_report

__all__ = ["Report", "write_report"]
