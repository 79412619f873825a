"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from mlops_provider import __version__
from mlops_provider.settings import OPTIONS


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
            {
                "hook-class-name": "mlops_provider.hooks.prometheus.PrometheusHook",
                "connection-type": "prometheus",
                "hook-name": "Prometheus",
                "ui-field-behaviour": {
                    "hidden-fields": ["extra"],
                    "relabeling": {"host": "Server URL", "login": "Username", "password": "Password or token"},
                    "placeholders": {"host": "http://prometheus.monitoring:9090", "port": "9090", "schema": "http"},
                },
                "conn-fields": {
                    "path_prefix": {
                        "label": "Path prefix",
                        "description": "Prefix before /api/v1 when Prometheus is served under a path (e.g. /prometheus).",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
            {
                "hook-class-name": "mlops_provider.hooks.dask.DaskHook",
                "connection-type": "dask",
                "hook-name": "Dask scheduler",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "password", "extra"],
                    "relabeling": {"host": "Scheduler (tcp://host or host)"},
                    "placeholders": {"host": "tcp://dask-scheduler.example:8786", "port": "8786"},
                },
            },
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
                    key: {
                        "description": option.description,
                        "version_added": "0.1.0",
                        # Airflow's config types; JSON options are strings holding a JSON object.
                        "type": option.type if option.type in ("integer", "boolean") else "string",
                        "example": option.example,
                        "default": option.default,
                    }
                    for key, option in OPTIONS.items()
                },
            }
        },
    }
