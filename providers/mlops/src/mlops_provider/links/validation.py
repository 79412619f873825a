"""Extra link from a validation task to its JSON validation report."""

from __future__ import annotations

from mlops_provider.links.base import MlopsBaseLink


def browsable_url(uri: str) -> str:
    """Return a URL a browser can open for a storage URI (cloud consoles for ``s3://`` and ``gs://``)."""
    from urllib.parse import quote

    scheme, _, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    if scheme == "s3":
        return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={quote(key)}"
    if scheme in ("gs", "gcs"):
        return f"https://console.cloud.google.com/storage/browser/_details/{bucket}/{quote(key)}"
    return uri


class ValidationReportLink(MlopsBaseLink):
    """Link to the validation report of the partition the task validated (the first failing one, if any)."""

    name = "Validation report"
    key = "validation_report"
    format_str = "{url}"
