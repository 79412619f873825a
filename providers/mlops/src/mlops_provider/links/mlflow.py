"""Extra links from training and gate tasks to the MLflow UI (run and registered model version)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_provider.links.base import MlopsBaseLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.mlflow import MlflowHook


class MlflowRunLink(MlopsBaseLink):
    """Link to the MLflow run that trained (or evaluated) the model.

    Persisted only when the MLflow connection has a browsable UI (not for the embedded SQLite store).
    """

    name = "MLflow run"
    key = "mlflow_run"
    format_str = "{base_url}/#/experiments/{experiment_id}/runs/{run_id}"


class MlflowModelVersionLink(MlopsBaseLink):
    """Link to the registered model version in the MLflow UI."""

    name = "MLflow model version"
    key = "mlflow_model_version"
    format_str = "{base_url}/#/models/{model_name}/versions/{version}"


def persist_mlflow_links(
    context: Context,
    hook: MlflowHook,
    *,
    experiment_id: str | None,
    run_id: str | None,
    model_name: str | None = None,
    version: str | int | None = None,
) -> None:
    """Persist the run and model-version links for this task instance when MLflow has a UI URL."""
    from urllib.parse import quote

    base_url = hook.ui_url()
    if not base_url:
        return
    base_url = base_url.rstrip("/")
    if experiment_id and run_id:
        MlflowRunLink.persist(context, base_url=base_url, experiment_id=quote(str(experiment_id)), run_id=quote(run_id))
    if model_name and version is not None:
        MlflowModelVersionLink.persist(
            context, base_url=base_url, model_name=quote(model_name), version=quote(str(version))
        )
