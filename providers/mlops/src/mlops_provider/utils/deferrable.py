"""The one place that decides whether an operator defers by default."""

from __future__ import annotations


def default_deferrable() -> bool:
    """Return ``[operators] default_deferrable`` (False when unset), as Airflow's own providers do."""
    from airflow.sdk.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)
