"""DAGs that drive the Vertex AI training operator into its job timeout (tests/integration/training/test_vertex.py).

Inputs come from ``dag_run.conf`` like the DAGs of ``training_operators.py``; the fake Vertex AI of the test
keeps the job running, so the task's ``job_timeout`` ends the wait.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

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
    "vertex_project": "mlops-test",
    "vertex_region": "europe-west4",
    "poll_interval": 0.2,
    "job_timeout": 3,
}


@dag(dag_id="training_vertex_timeout", **COMMON)
def training_vertex_timeout():
    XGBoostTrainVertexOperator(task_id="train", deferrable=False, **TRAIN)


@dag(dag_id="training_vertex_timeout_deferrable", **COMMON)
def training_vertex_timeout_deferrable():
    XGBoostTrainVertexOperator(task_id="train", deferrable=True, **TRAIN)


training_vertex_timeout()
training_vertex_timeout_deferrable()
