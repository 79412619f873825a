"""DAGs that drive the training and gate operators through Airflow in tests (tests/integration/test_training_*).

Inputs come from ``dag_run.conf`` (rendered as native objects): ``model_name``, ``training_set`` (a
manifest dict), ``params_file``, and for the gate ``candidate`` and ``criteria``.
"""

from __future__ import annotations

import time

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import dag, task

from mlops_provider.names import PROMOTION_POOL
from mlops_provider.operators.mlflow import MlflowEvaluationGateOperator
from mlops_provider.operators.training import training_operator_class
from mlops_provider.operators.training_kubernetes import XGBoostTrainKubernetesOperator
from mlops_provider.operators.training_vertex import XGBoostTrainVertexOperator

COMMON = {
    "schedule": None,
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "render_template_as_native_obj": True,
    "tags": ["test"],
}
TRAIN = {
    "model_name": "{{ dag_run.conf['model_name'] }}",
    "training_set": "{{ dag_run.conf['training_set'] }}",
    "params_file": "{{ dag_run.conf['params_file'] }}",
}
FAST_POD = {
    "schedule_timeout_seconds": 3,
    "startup_timeout_seconds": 3,
    "poll_interval": 0.3,
    "startup_check_interval_seconds": 1,
    "base_container_status_polling_interval": 0.3,
}


@dag(dag_id="training_local", **COMMON)
def training_local():
    training_operator_class("local")(task_id="train", **TRAIN)


@dag(dag_id="training_gate", **COMMON)
def training_gate():
    gate = MlflowEvaluationGateOperator(
        task_id="evaluation_gate",
        model_name="{{ dag_run.conf['model_name'] }}",
        candidate="{{ dag_run.conf['candidate'] }}",
        training_set="{{ dag_run.conf['training_set'] }}",
        criteria="{{ dag_run.conf.get('criteria') }}",
        pool=PROMOTION_POOL,
    )
    gate >> EmptyOperator(task_id="deploy")


@dag(dag_id="training_kubernetes_sync", **COMMON)
def training_kubernetes_sync():
    XGBoostTrainKubernetesOperator(task_id="train", deferrable=False, **TRAIN, **FAST_POD)


@dag(dag_id="training_kubernetes_gpu_pool", **COMMON)
def training_kubernetes_gpu_pool():
    """Scheduling may take far longer than starting: a node pool scaling up, then a fast image pull."""
    XGBoostTrainKubernetesOperator(
        task_id="train", deferrable=True, **TRAIN, **{**FAST_POD, "schedule_timeout_seconds": 12}
    )


@dag(dag_id="training_kubernetes_deferrable", **COMMON)
def training_kubernetes_deferrable():
    XGBoostTrainKubernetesOperator(task_id="train", deferrable=True, **TRAIN, **FAST_POD)


@dag(dag_id="training_kubernetes_render", **COMMON)
def training_kubernetes_render():
    XGBoostTrainKubernetesOperator(task_id="train", render_only=True, **TRAIN)


@dag(dag_id="training_vertex", **COMMON)
def training_vertex():
    XGBoostTrainVertexOperator(
        task_id="train",
        deferrable=False,
        poll_interval=0.2,
        vertex_project="mlops-test",
        vertex_region="europe-west4",
        vertex_service_account="trainer@mlops-test.iam.gserviceaccount.com",
        vertex_staging_bucket="gs://mlops-test-staging",
        **TRAIN,
    )


@dag(dag_id="training_vertex_deferrable", **COMMON)
def training_vertex_deferrable():
    XGBoostTrainVertexOperator(
        task_id="train",
        deferrable=True,
        poll_interval=0.2,
        vertex_project="mlops-test",
        vertex_region="europe-west4",
        **TRAIN,
    )


@dag(dag_id="training_kubernetes_reattach", **COMMON)
def training_kubernetes_reattach():
    @task
    def lost_worker_pod(**context) -> str:
        """Create the pod an earlier start of this same try left running (its worker died), as KPO would have."""
        from types import SimpleNamespace

        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from kubernetes.client import ApiClient

        conf = context["dag_run"].conf
        ti = SimpleNamespace(dag_id=context["dag"].dag_id, task_id="train", map_index=-1, try_number=1)
        earlier = {"ti": ti, "run_id": context["run_id"], "dag": context["dag"]}
        op = XGBoostTrainKubernetesOperator(
            task_id="train", model_name=conf["model_name"], training_set=conf["training_set"],
            params_file=conf["params_file"], mlflow_tracking_uri=conf["mlflow_tracking_uri"],
            image="ghcr.io/example/mlops-trainer:0.1.0", namespace="mlops", labels={"mlops-test": "lost-worker"},
            kubernetes_conn_id="fake_k8s",
        )  # fmt: skip
        pod = op.build_pod_request_obj(earlier)
        client = KubernetesHook(conn_id="fake_k8s").core_v1_client
        created = client.create_namespaced_pod("mlops", ApiClient().sanitize_for_serialization(pod))
        deadline = time.monotonic() + 120
        while conf.get("finished_before_retry") and time.monotonic() < deadline:
            phase = client.read_namespaced_pod(created.metadata.name, "mlops").status.phase
            if phase in ("Succeeded", "Failed"):
                break
            time.sleep(0.2)
        return created.metadata.name

    train = XGBoostTrainKubernetesOperator(
        task_id="train", deferrable=False, labels={"mlops-test": "lost-worker"}, **FAST_POD, **TRAIN,
    )  # fmt: skip
    lost_worker_pod() >> train


for _factory in (
    training_kubernetes_reattach,
    training_local,
    training_gate,
    training_kubernetes_sync,
    training_kubernetes_gpu_pool,
    training_kubernetes_deferrable,
    training_kubernetes_render,
    training_vertex,
    training_vertex_deferrable,
):
    _factory()
