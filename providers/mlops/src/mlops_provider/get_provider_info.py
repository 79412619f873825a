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
            {"hook-class-name": "mlops_provider.hooks.mlflow.MlflowHook", "connection-type": "mlflow"},
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
                },
            }
        },
    }
