"""Run DAGs through a real Airflow (``dag.test()``) and read back task states and XComs."""

from __future__ import annotations

from typing import Any


def load_dag(dag_id: str):
    """Parse the DAG from the bundles configured in conftest (``dags/`` and ``tests/dag_files/``)."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import REPO_ROOT

    for folder in (REPO_ROOT / "tests" / "dag_files", REPO_ROOT / "dags"):
        bag = DagBag(dag_folder=str(folder))
        if dag_id in bag.dags:
            return bag.dags[dag_id]
    raise KeyError(f"DAG {dag_id!r} not found in dags/ or tests/dag_files/")


def run_dag(dag_id: str, *, conf: dict | None = None, logical_date=None):
    """Run every task of ``dag_id`` once through Airflow's ``dag.test()`` and return the DagRun."""
    dag = load_dag(dag_id)
    return dag.test(run_conf=conf, logical_date=logical_date)


def task_states(dag_run) -> dict[str, str]:
    """Map task_id to its final state for ``dag_run``."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return {ti.task_id: (ti.state.value if hasattr(ti.state, "value") else ti.state) for ti in tis}


def task_xcom(dag_run, task_id: str, key: str = "return_value") -> Any:
    """Return the XCom ``key`` pushed by ``task_id`` in ``dag_run`` (None when absent)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key)
            .one_or_none()
        )
        if row is None:
            return None
        return XComModel.deserialize_value(row)
