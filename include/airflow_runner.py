"""Run DAGs through a real Airflow (``dag.test()``) and read back task states and XComs.

Used by ``make demo`` and by the test suite, so both exercise the pipeline the way Airflow runs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def prepare_metadata_db(env: dict[str, str]) -> None:
    """What a user does once per Airflow home (``env``'s): ``airflow db migrate`` and the bundle's pools."""
    import subprocess
    import sys

    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], check=True, env=env, stdout=subprocess.DEVNULL)
    create_pools(env)


def create_pools(env: dict[str, str]) -> None:
    """Create (or update) the one-slot pools the bundle's DAGs serialize on (also in ``airflow_settings.yaml``)."""
    import subprocess
    import sys

    from mlops_provider.names import FEAST_REGISTRY_POOL, PROMOTION_POOL

    pools = {
        PROMOTION_POOL: "Serializes model promotion and deployment (MLflow version creation races)",
        FEAST_REGISTRY_POOL: "Serializes Feast apply and materialize (registry writes)",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    for name, description in pools.items():
        subprocess.run(
            [airflow, "pools", "set", name, "1", description], check=True, env=env, stdout=subprocess.DEVNULL
        )


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


def task_durations(dag_run) -> dict[str, float]:
    """Map task_id to the seconds its last try ran (tasks that never started are left out)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return {ti.task_id: round(float(ti.duration), 2) for ti in tis if ti.duration is not None}


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


def scheduler_pass() -> None:
    """Run one pass of the real scheduler's DagRun creation (asset-triggered and timed DAGs), then return."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import prohibit_commit

    runner = SchedulerJobRunner(job=Job(), num_runs=1, executors=[])
    with create_session() as session, prohibit_commit(session) as guard:
        runner._create_dagruns_for_dags(guard, session)


def asset_triggered_runs(dag_id: str) -> list[tuple[str, list[str]]]:
    """Return ``(run_id, [names of the asset events it consumed])`` for each asset-triggered run of ``dag_id``."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_type == DagRunType.ASSET_TRIGGERED)
        return [(r.run_id, sorted(e.asset.name for e in r.consumed_asset_events)) for r in runs]


def set_paused(dag_id: str, paused: bool) -> None:
    """Pause or unpause ``dag_id`` in the metadata DB, as the UI toggle does."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({DagModel.is_paused: paused})
