"""Assets of the bundle, declared once and used both as task outlets and as DAG schedules.

URIs are logical (``x-mlops://zone/name``; the ``x-`` prefix marks a custom scheme, which Airflow leaves alone instead of loading every provider's URI handlers at parse time) so that they stay the same whichever object store
``data_root`` points at; each event's ``extra`` carries the concrete URI, row counts and hashes.
"""

from __future__ import annotations

from airflow.sdk import Asset

GROUP = "mlops"


def raw_asset(dataset: str) -> Asset:
    """Raw zone of ``dataset``: one Parquet partition per data interval."""
    return Asset(name=f"raw.{dataset}", uri=f"x-mlops://raw/{dataset}", group=GROUP)


def validated_asset(dataset: str) -> Asset:
    """Validated zone of ``dataset``: rows that passed every check."""
    return Asset(name=f"validated.{dataset}", uri=f"x-mlops://validated/{dataset}", group=GROUP)


def features_asset(project: str) -> Asset:
    """Feast online store of ``project``, refreshed by materialization."""
    return Asset(name=f"features.{project}", uri=f"x-mlops://features/{project}", group=GROUP)


def training_set_asset(dataset: str) -> Asset:
    """Versioned point-in-time training-set snapshots built from ``dataset``."""
    return Asset(name=f"training_set.{dataset}", uri=f"x-mlops://training_set/{dataset}", group=GROUP)


def model_asset(model_name: str) -> Asset:
    """Registered model versions of ``model_name`` that passed the evaluation gate and were deployed."""
    return Asset(name=f"model.{model_name}", uri=f"x-mlops://model/{model_name}", group=GROUP)


def drift_asset(model_name: str) -> Asset:
    """Drift verdicts for ``model_name`` that call for retraining."""
    return Asset(name=f"drift.{model_name}", uri=f"x-mlops://drift/{model_name}", group=GROUP)


def batch_scores_asset(model_name: str) -> Asset:
    """Batch scores of ``model_name``: one Parquet partition per scored day."""
    return Asset(name=f"batch_scores.{model_name}", uri=f"x-mlops://batch_scores/{model_name}", group=GROUP)
