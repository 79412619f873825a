"""Extra link from a drift check to its Evidently HTML report, served by the MLOps UI plugin."""

from __future__ import annotations

from mlops_provider.links.base import MlopsBaseLink


class EvidentlyReportLink(MlopsBaseLink):
    """Open the drift check's Evidently report (``/mlops/reports/<model>/<run_ts>/report.html``)."""

    name = "Evidently drift report"
    key = "evidently_report"
    format_str = "{base_url}/mlops/reports/{model_name}/{run_ts}/report.html"


def api_base_url() -> str:
    """The API server's public base URL without a trailing slash (``[api] base_url``; empty: relative links)."""
    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    return base.rstrip("/")
