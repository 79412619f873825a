"""The bundle's one configuration surface.

Every value is read from Airflow's ``[mlops]`` config section, so ``AIRFLOW__MLOPS__<KEY>`` overrides
it; endpoints and credentials come from connections. When nothing is configured each backend falls
back to an embedded local default under ``local_root`` (SQLite MLflow, Feast's local provider,
``file://`` data zones, local training and serving), so the same code runs on a laptop and in a cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

TrainingBackend = Literal["local", "kubernetes", "vertex"]
ServingBackend = Literal["local", "kserve"]

TRAINING_BACKENDS: tuple[str, ...] = ("local", "kubernetes", "vertex")
SERVING_BACKENDS: tuple[str, ...] = ("local", "kserve")
SECTION = "mlops"


class MlopsConfigError(ValueError):
    """A setting of the ``[mlops]`` section has a value the bundle cannot use."""


@dataclass(frozen=True)
class MlopsSettings:
    """Resolved settings; build it with :func:`get_settings`."""

    project_root: Path
    local_root: Path
    data_root: str
    storage_conn_id: str | None
    mlflow_conn_id: str
    feast_conn_id: str
    feast_repo_path: Path
    kubernetes_conn_id: str
    namespace: str
    training_backend: TrainingBackend
    serving_backend: ServingBackend
    model_name: str
    trainer_image: str
    serving_image: str
    serving_python: str
    local_serving_port: int
    gcp_conn_id: str
    vertex_project: str
    vertex_region: str
    # Monitoring (drift checks, retraining throttle, alerts).
    drift_policy: str = ""
    drift_tests: str = ""
    drift_report_sample_rows: int = 10_000
    retraining_cooldown_minutes: int = 360
    retraining_daily_cap: int = 2
    alert_notifier: str = "log"
    alert_webhook_conn_id: str = "mlops_alerts"
    # Training and registry: promotion gate criteria as JSON over the gate's defaults.
    promotion_criteria: str = ""

    @property
    def mlflow_local_tracking_uri(self) -> str:
        """Tracking URI of the embedded MLflow store (used when the MLflow connection does not exist)."""
        return f"sqlite:///{self.local_root / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_local_artifact_root(self) -> str:
        """Artifact root of the embedded MLflow store."""
        return (self.local_root / "mlflow" / "artifacts").as_uri()

    @property
    def feast_local_root(self) -> Path:
        """Folder for Feast's local registry and SQLite online store."""
        return self.local_root / "feast"

    @property
    def serving_root(self) -> Path:
        """Folder for the local serving backend's state (pid files, logs, predictions)."""
        return self.local_root / "serving"

    def zone_uri(self, zone: str, dataset: str) -> str:
        """Return the URI of a data zone for a dataset, e.g. ``<data_root>/raw/transactions``."""
        return f"{self.data_root.rstrip('/')}/{zone}/{dataset}"


def _conf():
    from airflow.sdk.configuration import conf

    return conf


def _get(key: str, default: str) -> str:
    value = _conf().get(SECTION, key, fallback=default)
    return value if value not in (None, "") else default


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or _conf().get("core", "airflow_home", fallback="~/airflow")).expanduser()


def _default_project_root() -> Path:
    dags_folder = _conf().get("core", "dags_folder", fallback="")
    if dags_folder:
        candidate = Path(dags_folder).expanduser().resolve().parent
        if (candidate / "include").is_dir():
            return candidate
    return Path.cwd()


def _int_setting(key: str, default: str) -> int:
    text = _get(key, default)
    try:
        return int(text)
    except ValueError:
        raise MlopsConfigError(
            f"[mlops] {key}={text!r} is not an integer; set AIRFLOW__MLOPS__{key.upper()}."
        ) from None


def get_settings() -> MlopsSettings:
    """Resolve the settings from Airflow config and environment, with local defaults.

    Cheap (no connection or network access), so it may be called from ``execute()`` each time.
    """
    project_root = Path(_get("project_root", str(_default_project_root()))).expanduser().resolve()
    local_root = Path(_get("local_root", str(_airflow_home() / "mlops"))).expanduser().resolve()
    training_backend = _get("training_backend", "local")
    if training_backend not in TRAINING_BACKENDS:
        raise MlopsConfigError(
            f"[mlops] training_backend={training_backend!r} is not one of {', '.join(TRAINING_BACKENDS)}; "
            "set AIRFLOW__MLOPS__TRAINING_BACKEND to one of them."
        )
    serving_backend = _get("serving_backend", "local")
    if serving_backend not in SERVING_BACKENDS:
        raise MlopsConfigError(
            f"[mlops] serving_backend={serving_backend!r} is not one of {', '.join(SERVING_BACKENDS)}; "
            "set AIRFLOW__MLOPS__SERVING_BACKEND to one of them."
        )
    port_text = _get("local_serving_port", "8085")
    try:
        port = int(port_text)
    except ValueError:
        raise MlopsConfigError(f"[mlops] local_serving_port={port_text!r} is not an integer port number.") from None
    return MlopsSettings(
        project_root=project_root,
        local_root=local_root,
        data_root=_get("data_root", (local_root / "data").as_uri()),
        storage_conn_id=_get("storage_conn_id", "") or None,
        mlflow_conn_id=_get("mlflow_conn_id", "mlflow_default"),
        feast_conn_id=_get("feast_conn_id", "feast_default"),
        feast_repo_path=Path(_get("feast_repo_path", str(project_root / "include" / "feature_repo"))),
        kubernetes_conn_id=_get("kubernetes_conn_id", "kubernetes_default"),
        namespace=_get("namespace", "mlops"),
        training_backend=cast(TrainingBackend, training_backend),
        serving_backend=cast(ServingBackend, serving_backend),
        model_name=_get("model_name", "fraud_detector"),
        trainer_image=_get("trainer_image", "ghcr.io/example/mlops-trainer:0.1.0"),
        serving_image=_get("serving_image", "ghcr.io/example/mlops-serving:0.1.0"),
        serving_python=_get("serving_python", str(project_root / ".venv-serving" / "bin" / "python")),
        local_serving_port=port,
        gcp_conn_id=_get("gcp_conn_id", "google_cloud_default"),
        vertex_project=_get("vertex_project", ""),
        vertex_region=_get("vertex_region", "us-central1"),
        drift_policy=_get("drift_policy", ""),
        drift_tests=_get("drift_tests", ""),
        drift_report_sample_rows=_int_setting("drift_report_sample_rows", "10000"),
        retraining_cooldown_minutes=_int_setting("retraining_cooldown_minutes", "360"),
        retraining_daily_cap=_int_setting("retraining_daily_cap", "2"),
        alert_notifier=_get("alert_notifier", "log"),
        alert_webhook_conn_id=_get("alert_webhook_conn_id", "mlops_alerts"),
        promotion_criteria=_get("promotion_criteria", ""),
    )
