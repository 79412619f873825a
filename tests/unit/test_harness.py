from __future__ import annotations

from tests.airflow_helpers import run_dag, task_states, task_xcom


def test_harness_runs_a_dag_through_airflow():
    dag_run = run_dag("harness_smoke")
    assert task_states(dag_run) == {"produce": "success", "consume": "success"}
    assert task_xcom(dag_run, "produce") == {"rows": 3}
    assert task_xcom(dag_run, "consume") == 6
