"""How a training run and its model version are found in MLflow by the attempt's idempotency key.

Shared by the trainer (which registers) and the training operators (which read the result back after a
pod or a Vertex AI job finished), so both agree on tag names (:mod:`mlops_provider.lineage`) and on the
result's shape (:class:`~mlops_provider.payloads.TrainingResult`). Functions take an ``MlflowClient``:
the trainer has no Airflow hook.
"""

from __future__ import annotations

from typing import Any

from mlops_provider.lineage import (
    DEVICE_TAG,
    IDEMPOTENCY_TAG,
    MODEL_ID_TAG,
    MODEL_URI_TAG,
    THRESHOLD_TAG,
    TRAINING_SET_HASH_TAG,
    TRAINING_SET_URI_TAG,
)
from mlops_provider.payloads import TrainingResult

__all__ = ["DEVICE_TAG", "IDEMPOTENCY_TAG", "MODEL_ID_TAG", "MODEL_URI_TAG", "THRESHOLD_TAG"]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def runs_with_key(client: Any, experiment_id: str, key: str, tag: str = IDEMPOTENCY_TAG) -> list:
    """Every run of ``experiment_id`` whose ``tag`` (default: the idempotency key) is ``key``, newest first."""
    return client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{tag}` = '{_quote(key)}'",
        order_by=["attributes.start_time DESC"],
    )


def version_of_run(client: Any, model_name: str, run_id: str):
    """The newest registered version of ``model_name`` created from ``run_id``, or None."""
    versions = client.search_model_versions(f"name = '{_quote(model_name)}' and run_id = '{_quote(run_id)}'")
    return max(versions, key=lambda v: int(v.version)) if versions else None


def result_from_run(client: Any, model_name: str, run: Any, version: Any, *, reused: bool) -> TrainingResult:
    """The training result (the training operators' XCom) for a finished run and its version."""
    metrics = {k: float(v) for k, v in run.data.metrics.items()}
    tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_name": model_name,
        "model_version": str(version.version),
        "model_uri": f"models:/{model_name}/{version.version}",
        "artifact_uri": client.get_model_version_download_uri(model_name, version.version),
        "metrics": metrics,
        "threshold": float(tags.get(THRESHOLD_TAG, metrics.get("threshold", 0.5))),
        "training_set_uri": tags.get(TRAINING_SET_URI_TAG, ""),
        "training_set_hash": tags.get(TRAINING_SET_HASH_TAG, ""),
        "idempotency_key": tags.get(IDEMPOTENCY_TAG, ""),
        "device": tags.get(DEVICE_TAG, "unknown"),
        "reused": reused,
    }


def find_training_result(
    client: Any, model_name: str, key: str, experiment_name: str | None = None
) -> TrainingResult | None:
    """The result registered under idempotency ``key``, or None when that attempt registered nothing."""
    experiment = client.get_experiment_by_name(experiment_name or model_name)
    if experiment is None:
        return None
    for run in runs_with_key(client, experiment.experiment_id, key):
        if run.info.status != "FINISHED":
            continue
        version = version_of_run(client, model_name, run.info.run_id)
        if version is not None:
            return result_from_run(client, model_name, run, version, reused=False)
    return None
