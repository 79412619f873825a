"""Chaos DAGs of the training backends (local subprocess, Kubernetes pod)."""

from __future__ import annotations

from airflow.sdk import dag

from mlops_provider.operators.training_kubernetes import XGBoostTrainKubernetesOperator
from mlops_provider.operators.training_local import XGBoostTrainLocalOperator
from tests.chaos.dag_defaults import COMMON, CONF, TRAIN


def _train_local(dag_id: str):
    @dag(dag_id=dag_id, **COMMON)
    def chaos():
        XGBoostTrainLocalOperator(task_id="train", **TRAIN)

    return chaos()


def _train_kubernetes(dag_id: str):
    @dag(dag_id=dag_id, **COMMON)
    def chaos():
        XGBoostTrainKubernetesOperator(
            task_id="train",
            deferrable=False,
            mlflow_tracking_uri=CONF("mlflow_tracking_uri"),
            image="ghcr.io/example/mlops-trainer:0.1.0",
            startup_timeout_seconds=20,
            poll_interval=0.3,
            startup_check_interval_seconds=1,
            base_container_status_polling_interval=0.3,
            **TRAIN,
        )

    return chaos()


chaos_train_after_register = _train_local("chaos_train_after_register")
chaos_train_after_launch = _train_local("chaos_train_after_launch")
chaos_train_pod_created = _train_kubernetes("chaos_train_pod_created")
