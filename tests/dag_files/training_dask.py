"""DAGs that drive the dask training backend in tests (tests/integration/training/test_dask.py).

Inputs come from ``dag_run.conf`` (rendered as native objects) as in ``training_operators.py``: ``model_name``,
``training_set`` (a manifest dict), ``params_file``; the DaskJob DAGs also take ``mlflow_tracking_uri``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from mlops_provider.operators.training import training_operator_class
from mlops_provider.operators.training_dask import XGBoostTrainDaskJobOperator

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
DASK_JOB = {
    **TRAIN,
    "mlflow_tracking_uri": "{{ dag_run.conf['mlflow_tracking_uri'] }}",
    "image": "ghcr.io/example/mlops-trainer:0.1.0",
    "n_workers": 2,
    "worker_cpu": "1",
    "worker_memory": "2Gi",
    "gpus_per_worker": 1,
    "poll_interval": 0.2,
}


@dag(dag_id="training_dask_local_cluster", **COMMON)
def training_dask_local_cluster():
    training_operator_class("dask")(task_id="train", n_workers=2, **TRAIN)


@dag(dag_id="training_dask_job", **COMMON)
def training_dask_job():
    XGBoostTrainDaskJobOperator(task_id="train", deferrable=False, **DASK_JOB)


@dag(dag_id="training_dask_job_deferrable", **COMMON)
def training_dask_job_deferrable():
    XGBoostTrainDaskJobOperator(task_id="train", deferrable=True, **DASK_JOB)


for _factory in (training_dask_local_cluster, training_dask_job, training_dask_job_deferrable):
    _factory()
