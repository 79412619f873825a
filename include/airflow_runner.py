"""Run DAGs through a real Airflow (``dag.test()``) and read back task states and XComs.

Used by ``make demo`` and by the test suite, so both exercise the pipeline the way Airflow runs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def load_dag(dag_id: str, folders: Iterable[Path]):
    """Parse ``dag_id`` from the first folder that defines it."""
    from airflow.dag_processing.dagbag import DagBag

    searched = []
    for folder in folders:
        bag = DagBag(dag_folder=str(folder))
        if dag_id in bag.dags:
            return bag.dags[dag_id]
        searched.append(f"{folder} (import errors: {sorted(bag.import_errors) or 'none'})")
    raise KeyError(f"DAG {dag_id!r} not found in: {'; '.join(searched)}")


def run_dag(dag_id: str, folders: Iterable[Path], *, conf: dict | None = None, logical_date=None):
    """Run every task of ``dag_id`` once through Airflow's ``dag.test()`` and return the DagRun."""
    return load_dag(dag_id, folders).test(run_conf=conf, logical_date=logical_date)


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
        return None if row is None else XComModel.deserialize_value(row)
