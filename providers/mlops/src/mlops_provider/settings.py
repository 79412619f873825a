"""The bundle's one configuration surface.

Every value is read from Airflow's ``[mlops]`` config section, so ``AIRFLOW__MLOPS__<KEY>`` overrides
it; endpoints and credentials come from connections. When nothing is configured each backend falls
back to an embedded local default under ``local_root`` (SQLite MLflow, Feast's local provider,
``file://`` data zones, local training and serving), so the same code runs on a laptop and in a cluster.

Each option is declared once in :data:`OPTIONS` (default, type, description); ``get_provider_info``
publishes the same table as the provider's config section. :func:`get_settings` resolves them once per
configuration (cached; :func:`reset_settings` clears the cache in tests) and parses the JSON options into
dicts, so operators never parse settings themselves.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

TrainingBackend = Literal["local", "kubernetes", "vertex", "dask"]
ServingBackend = Literal["local", "kserve"]

TRAINING_BACKENDS: tuple[str, ...] = ("local", "kubernetes", "vertex", "dask")
SERVING_BACKENDS: tuple[str, ...] = ("local", "kserve")
#: Where batch scoring runs; Kubernetes and Dask are not written yet.
BATCH_SCORING_BACKENDS: tuple[str, ...] = ("local",)
SECTION = "mlops"


class MlopsConfigError(ValueError):
    """A setting of the ``[mlops]`` section has a value the bundle cannot use."""


class Option(NamedTuple):
    """One ``[mlops]`` option: its default (as Airflow config text), type and description."""

    default: str
    description: str
    type: str = "string"  # "string" | "integer" | "boolean" | "json"
    example: str | None = None


OPTIONS: dict[str, Option] = {
    "project_root": Option(
        "",
        "Root of the bundle (holds include/ and the serving environment). Empty means the parent of the DAGs folder.",
    ),
    "local_root": Option(
        "",
        "Folder for the embedded local stores (MLflow, Feast, data zones, local serving). Empty means <AIRFLOW_HOME>/mlops.",
    ),
    "data_root": Option(
        "",
        "Base URI of the data zones (landing, raw, validated, quarantine, training_sets, reports, predictions). "
        "file://, s3:// or gs://. Empty means file://<local_root>/data.",
        example="s3://my-bucket/mlops",
    ),
    "storage_conn_id": Option(
        "", "Connection for data_root; empty picks aws_default for s3:// and google_cloud_default for gs://."
    ),
    "mlflow_conn_id": Option(
        "mlflow_default", "MLflow connection; when it does not exist the local SQLite store is used."
    ),
    "feast_conn_id": Option(
        "feast_default", "Feast connection; when it does not exist Feast's local provider is used."
    ),
    "feast_repo_path": Option("", "Feast feature repository. Empty means <project_root>/include/feature_repo."),
    "feast_materialize_chunk_days": Option(
        "7",
        "Days of feature data per Feast materialize call; a killed materialization resumes after its last chunk.",
        "integer",
    ),
    "model_specs_folder": Option(
        "",
        "Folder of the model specs (<model>.yaml) that DAGs and Feast definitions are generated from. "
        "Empty means <project_root>/include/models.",
    ),
    "kubernetes_conn_id": Option("kubernetes_default", "Kubernetes connection for training pods and KServe."),
    "namespace": Option("mlops", "Kubernetes namespace for training pods and InferenceServices."),
    "training_backend": Option("local", "Where training runs: local, kubernetes, vertex or dask."),
    "serving_backend": Option("local", "Where models are served: local or kserve."),
    "model_name": Option(
        "", "Default registered model name for tools that serve or render one model (make serve, make render)."
    ),
    "trainer_image": Option(
        "ghcr.io/example/mlops-trainer:0.1.0", "Trainer image for the kubernetes and vertex backends."
    ),
    "cluster_shares_local_paths": Option(
        "False",
        "True when every cluster node mounts this machine's data and artifact paths at the same place (a "
        "single-node kind cluster, an NFS share): file:// URIs may then be handed to pods and InferenceServices.",
        "boolean",
    ),
    "training_schedule_timeout_seconds": Option(
        "900",
        "Seconds a training pod may wait for a node (an autoscaled GPU pool adds one in minutes) before it fails.",
        "integer",
    ),
    "training_startup_timeout_seconds": Option(
        "300",
        "Seconds a scheduled training pod may take to start its container (image pull) before it fails.",
        "integer",
    ),
    "serving_image": Option("ghcr.io/example/mlops-serving:0.1.0", "Model server image for KServe."),
    "serving_python": Option(
        "",
        "Python interpreter of the serving environment for the local serving backend. "
        "Empty means <project_root>/.venv-serving/bin/python.",
    ),
    "local_serving_port": Option("8085", "Port of the local model endpoint.", "integer"),
    "gcp_conn_id": Option("google_cloud_default", "Google Cloud connection for Vertex AI."),
    "vertex_project": Option("", "Vertex AI project."),
    "vertex_region": Option("us-central1", "Vertex AI region."),
    "promotion_criteria": Option(
        "",
        "Evaluation gate criteria as JSON, merged over the gate's defaults for the candidate's task (min_metrics, "
        "max_regression vs champion, segments); a metric the task is not scored on is an error. Empty means the "
        "defaults.",
        "json",
        '{"min_metrics": {"roc_auc": 0.8}, "max_regression": {"pr_auc": 0.01}}',
    ),
    "drift_policy": Option(
        "",
        "Drift policy as JSON: drift_share, critical_features, max_performance_drop, performance_metric, "
        "prediction_drift_triggers. Empty means share of drifted features >= 0.5.",
        "json",
        '{"drift_share": 0.3, "critical_features": ["feature_a"], "max_performance_drop": 0.05}',
    ),
    "drift_tests": Option(
        "",
        "Per-feature drift tests and thresholds as JSON with Evidently's DataDriftPreset names (method, num_method, "
        "cat_method, per_column_method, threshold, num_threshold, cat_threshold, per_column_threshold, "
        "column_types). Empty means Evidently's defaults.",
        "json",
        '{"per_column_method": {"feature_a": "psi"}, "per_column_threshold": {"feature_a": 0.2}}',
    ),
    "drift_report_sample_rows": Option(
        "10000", "Rows sampled from each dataset for the Evidently HTML report (the decision uses all rows).", "integer"
    ),
    "retraining_cooldown_minutes": Option(
        "360", "Minimum minutes between two scheduled retraining runs of a model.", "integer"
    ),
    "retraining_daily_cap": Option("2", "Most scheduled retraining runs of a model per UTC day.", "integer"),
    "partition_versions_retained": Option(
        "5",
        "Immutable versions kept per raw, validated and quarantine partition (the newest ones; the current version "
        "is never deleted). A training set whose recorded partition versions were deleted cannot be reproduced.",
        "integer",
    ),
    "alert_notifier": Option("log", "Where alerts go: log or webhook."),
    "alert_webhook_conn_id": Option(
        "mlops_alerts", "Connection (host = webhook URL, password = optional bearer token) for the webhook notifier."
    ),
}


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
    feast_materialize_chunk_days: int
    model_specs_folder: Path
    kubernetes_conn_id: str
    namespace: str
    training_backend: TrainingBackend
    serving_backend: ServingBackend
    model_name: str
    trainer_image: str
    cluster_shares_local_paths: bool
    training_schedule_timeout_seconds: int
    training_startup_timeout_seconds: int
    serving_image: str
    serving_python: str
    local_serving_port: int
    gcp_conn_id: str
    vertex_project: str
    vertex_region: str
    drift_report_sample_rows: int
    retraining_cooldown_minutes: int
    retraining_daily_cap: int
    alert_notifier: str
    alert_webhook_conn_id: str
    #: JSON options, parsed (empty dict when unset).
    promotion_criteria: dict[str, Any] = field(default_factory=dict)
    drift_policy: dict[str, Any] = field(default_factory=dict)
    drift_tests: dict[str, Any] = field(default_factory=dict)
    #: Versions kept per data partition (see :mod:`mlops_provider.partitions`).
    partition_versions_retained: int = 5

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
        """Return the URI of a data zone for a dataset, e.g. ``<data_root>/raw/<dataset>``.

        The names are checked as path segments (:func:`mlops_provider.partitions.safe_segment`).
        """
        from mlops_provider.names import zone_uri

        return zone_uri(self.data_root, zone, dataset)


def _conf():
    from airflow.sdk.configuration import conf

    return conf


def _get(key: str) -> str:
    default = OPTIONS[key].default
    value = _conf().get(SECTION, key, fallback=default)
    return value if value not in (None, "") else default


def _airflow_home() -> Path:
    return Path(
        os.environ.get("AIRFLOW_HOME") or _conf().get("core", "airflow_home", fallback="~/airflow")
    ).expanduser()


def _default_project_root() -> Path:
    dags_folder = _conf().get("core", "dags_folder", fallback="")
    if dags_folder:
        candidate = Path(dags_folder).expanduser().resolve().parent
        if (candidate / "include").is_dir():
            return candidate
    return Path.cwd()


def _bool(key: str) -> bool:
    text = _get(key).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise MlopsConfigError(
        f"[mlops] {key}={text!r} is not a boolean; set AIRFLOW__MLOPS__{key.upper()} to True or False."
    )


def _int(key: str) -> int:
    text = _get(key)
    try:
        return int(text)
    except ValueError:
        raise MlopsConfigError(
            f"[mlops] {key}={text!r} is not an integer; set AIRFLOW__MLOPS__{key.upper()}."
        ) from None


def parse_json_option(key: str, text: str) -> dict[str, Any]:
    """Parse the JSON option ``key`` (empty text gives an empty dict) with an error that names the setting."""
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MlopsConfigError(
            f"[mlops] {key} is not valid JSON ({exc.msg} at position {exc.pos}); set AIRFLOW__MLOPS__{key.upper()} "
            f"to a JSON object, e.g. {OPTIONS[key].example}."
        ) from None
    if not isinstance(value, dict):
        raise MlopsConfigError(f"[mlops] {key} must be a JSON object, got {type(value).__name__}.")
    return value


def _choice(key: str, choices: tuple[str, ...]) -> str:
    value = _get(key)
    if value not in choices:
        raise MlopsConfigError(
            f"[mlops] {key}={value!r} is not one of {', '.join(choices)}; set AIRFLOW__MLOPS__{key.upper()} to one of them."
        )
    return value


def _resolve() -> MlopsSettings:
    project_root = Path(_get("project_root") or str(_default_project_root())).expanduser().resolve()
    local_root = Path(_get("local_root") or str(_airflow_home() / "mlops")).expanduser().resolve()
    return MlopsSettings(
        project_root=project_root,
        local_root=local_root,
        data_root=_get("data_root") or (local_root / "data").as_uri(),
        storage_conn_id=_get("storage_conn_id") or None,
        mlflow_conn_id=_get("mlflow_conn_id"),
        feast_conn_id=_get("feast_conn_id"),
        feast_repo_path=Path(_get("feast_repo_path") or str(project_root / "include" / "feature_repo")),
        feast_materialize_chunk_days=_int("feast_materialize_chunk_days"),
        model_specs_folder=Path(_get("model_specs_folder") or str(project_root / "include" / "models")).expanduser(),
        kubernetes_conn_id=_get("kubernetes_conn_id"),
        namespace=_get("namespace"),
        training_backend=cast(TrainingBackend, _choice("training_backend", TRAINING_BACKENDS)),
        serving_backend=cast(ServingBackend, _choice("serving_backend", SERVING_BACKENDS)),
        model_name=_get("model_name"),
        trainer_image=_get("trainer_image"),
        cluster_shares_local_paths=_bool("cluster_shares_local_paths"),
        training_schedule_timeout_seconds=_int("training_schedule_timeout_seconds"),
        training_startup_timeout_seconds=_int("training_startup_timeout_seconds"),
        serving_image=_get("serving_image"),
        serving_python=_get("serving_python") or str(project_root / ".venv-serving" / "bin" / "python"),
        local_serving_port=_int("local_serving_port"),
        gcp_conn_id=_get("gcp_conn_id"),
        vertex_project=_get("vertex_project"),
        vertex_region=_get("vertex_region"),
        drift_report_sample_rows=_int("drift_report_sample_rows"),
        retraining_cooldown_minutes=_int("retraining_cooldown_minutes"),
        retraining_daily_cap=_int("retraining_daily_cap"),
        alert_notifier=_get("alert_notifier"),
        alert_webhook_conn_id=_get("alert_webhook_conn_id"),
        promotion_criteria=parse_json_option("promotion_criteria", _get("promotion_criteria")),
        drift_policy=parse_json_option("drift_policy", _get("drift_policy")),
        drift_tests=parse_json_option("drift_tests", _get("drift_tests")),
        partition_versions_retained=_int("partition_versions_retained"),
    )


def _environment_fingerprint() -> tuple[tuple[str, str], ...]:
    # Config in the environment is the usual override (and what tests change); the cache follows it.
    return tuple(
        sorted(
            (k, v) for k, v in os.environ.items() if k.startswith("AIRFLOW__MLOPS__") or k.startswith("AIRFLOW__CORE__")
        )
    ) + (("AIRFLOW_HOME", os.environ.get("AIRFLOW_HOME", "")),)


@functools.lru_cache(maxsize=8)
def _cached(fingerprint: tuple[tuple[str, str], ...]) -> MlopsSettings:
    return _resolve()


def get_settings() -> MlopsSettings:
    """Return the resolved settings: read once per configuration, then served from a cache.

    No connection or network access. Raises :class:`MlopsConfigError` naming the option that is wrong.
    """
    return _cached(_environment_fingerprint())


def reset_settings() -> None:
    """Forget the cached settings (tests that change ``airflow.cfg`` rather than the environment)."""
    _cached.cache_clear()
