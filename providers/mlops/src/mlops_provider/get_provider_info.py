"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from mlops_provider import __version__


def _option(description: str, default: str | None, example: str | None = None, type_: str = "string") -> dict:
    return {
        "description": description,
        "version_added": "0.1.0",
        "type": type_,
        "example": example,
        "default": default,
    }


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata: connection types, extra links and the ``[mlops]`` config section."""
    return {
        "package-name": "airflow-provider-mlops",
        "name": "MLOps",
        "description": "Ingestion, validation, Feast features, XGBoost training, MLflow promotion, "
        "KServe rollout and Evidently drift checks for Airflow 3.",
        "versions": [__version__],
        "connection-types": [
            {
                "hook-class-name": "mlops_provider.hooks.mlflow.MlflowHook",
                "connection-type": "mlflow",
                "hook-name": "MLflow",
                "ui-field-behaviour": {
                    "hidden-fields": ["extra"],
                    "relabeling": {"host": "Tracking server URL", "login": "Username", "password": "Password or token"},
                    "placeholders": {"host": "https://mlflow.example.com", "port": "443", "schema": "https"},
                },
                "conn-fields": {
                    "registry_uri": {
                        "label": "Registry URI",
                        "description": "Model registry store when it differs from the tracking server.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "ui_url": {
                        "label": "UI URL",
                        "description": "Base URL people open for runs and models (default: the tracking URL).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "auth_type": {
                        "label": "Auth type",
                        "description": "basic (username + password) or token (password is a bearer token).",
                        "schema": {"type": ["string", "null"], "enum": ["basic", "token", None]},
                    },
                    "insecure_tls": {"label": "Skip TLS verification", "schema": {"type": ["boolean", "null"]}},
                },
            },
            {"hook-class-name": "mlops_provider.hooks.feast.FeastHook", "connection-type": "feast"},
        ],
        "extra-links": [
            "mlops_provider.links.mlflow.MlflowRunLink",
            "mlops_provider.links.mlflow.MlflowModelVersionLink",
            "mlops_provider.links.validation.ValidationReportLink",
            "mlops_provider.links.kserve.KServeEndpointLink",
            "mlops_provider.links.evidently.EvidentlyReportLink",
        ],
        "config": {
            "mlops": {
                "description": "Settings of the MLOps bundle. Each one can be set with AIRFLOW__MLOPS__<KEY>.",
                "options": {
                    "project_root": _option(
                        "Root of the bundle (holds include/ and the serving environment). "
                        "Empty means the parent of the DAGs folder.",
                        "",
                    ),
                    "feast_repo_path": _option(
                        "Feast feature repository. Empty means <project_root>/include/feature_repo.", ""
                    ),
                    "local_root": _option(
                        "Folder for the embedded local stores (MLflow, Feast, data zones, local serving). "
                        "Empty means <AIRFLOW_HOME>/mlops.",
                        "",
                    ),
                    "data_root": _option(
                        "Base URI of the data zones (landing, raw, validated, quarantine, training_sets, "
                        "reports). file://, s3:// or gs://. Empty means file://<local_root>/data.",
                        "",
                        "s3://my-bucket/mlops",
                    ),
                    "storage_conn_id": _option(
                        "Connection for data_root; empty picks aws_default for s3:// and "
                        "google_cloud_default for gs://.",
                        "",
                    ),
                    "mlflow_conn_id": _option(
                        "MLflow connection; when it does not exist the local SQLite store is used.",
                        "mlflow_default",
                    ),
                    "feast_conn_id": _option(
                        "Feast connection; when it does not exist Feast's local provider is used.",
                        "feast_default",
                    ),
                    "kubernetes_conn_id": _option("Kubernetes connection for training pods and KServe.", "kubernetes_default"),
                    "namespace": _option("Kubernetes namespace for training pods and InferenceServices.", "mlops"),
                    "training_backend": _option("Where training runs: local, kubernetes or vertex.", "local"),
                    "serving_backend": _option("Where models are served: local or kserve.", "local"),
                    "model_name": _option("Registered model name.", "fraud_detector"),
                    "trainer_image": _option("Trainer image for the kubernetes and vertex backends.", "ghcr.io/example/mlops-trainer:0.1.0"),
                    "serving_image": _option("Model server image for KServe.", "ghcr.io/example/mlops-serving:0.1.0"),
                    "serving_python": _option(
                        "Python interpreter of the serving environment for the local serving backend. "
                        "Empty means <project_root>/.venv-serving/bin/python.",
                        "",
                    ),
                    "local_serving_port": _option("Port of the local model endpoint.", "8085", type_="integer"),
                    "gcp_conn_id": _option("Google Cloud connection for Vertex AI.", "google_cloud_default"),
                    "vertex_project": _option("Vertex AI project.", ""),
                    "vertex_region": _option("Vertex AI region.", "us-central1"),
                    "promotion_criteria": _option(
                        "Evaluation gate criteria as JSON, merged over the gate's defaults (min_metrics, "
                        "max_regression vs champion, segments). Empty means the defaults.",
                        "",
                        '{"min_metrics": {"roc_auc": 0.8}, "max_regression": {"pr_auc": 0.01}}',
                    ),
                    "drift_policy": _option(
                        "Drift policy as JSON: drift_share, critical_features, max_performance_drop, "
                        "performance_metric, prediction_drift_triggers. Empty means share of drifted features >= 0.5.",
                        "",
                        '{"drift_share": 0.3, "critical_features": ["amount"], "max_performance_drop": 0.05}',
                    ),
                    "drift_tests": _option(
                        "Per-feature drift tests and thresholds as JSON with Evidently's DataDriftPreset names "
                        "(method, num_method, cat_method, per_column_method, threshold, num_threshold, "
                        "cat_threshold, per_column_threshold, column_types). Empty means Evidently's defaults.",
                        "",
                        '{"per_column_method": {"amount": "psi"}, "per_column_threshold": {"amount": 0.2}}',
                    ),
                    "drift_report_sample_rows": _option(
                        "Rows sampled from each dataset for the Evidently HTML report (the decision uses all rows).",
                        "10000",
                        type_="integer",
                    ),
                    "retraining_cooldown_minutes": _option(
                        "Minimum minutes between two scheduled retraining runs of a model.", "360", type_="integer"
                    ),
                    "retraining_daily_cap": _option(
                        "Most scheduled retraining runs of a model per UTC day.", "2", type_="integer"
                    ),
                    "alert_notifier": _option("Where alerts go: log or webhook.", "log"),
                    "alert_webhook_conn_id": _option(
                        "Connection (host = webhook URL, password = optional bearer token) for the webhook notifier.",
                        "mlops_alerts",
                    ),
                },
            }
        },
    }
