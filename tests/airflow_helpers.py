"""Run DAGs through a real Airflow from tests: test DAGs in tests/dag_files/ first, then the product's dags/."""

from __future__ import annotations

from include.airflow_runner import load_dag as _load_dag
from include.airflow_runner import run_dag as _run_dag
from include.airflow_runner import task_states, task_xcom
from tests.conftest import REPO_ROOT

__all__ = ["TRAINING_CHAIN", "assert_chain", "load_dag", "run_dag", "task_states", "task_xcom"]

FOLDERS = (REPO_ROOT / "tests" / "dag_files", REPO_ROOT / "dags")


def load_dag(dag_id: str):
    return _load_dag(dag_id, FOLDERS)


def run_dag(dag_id: str, *, conf: dict | None = None, logical_date=None):
    return _run_dag(dag_id, FOLDERS, conf=conf, logical_date=logical_date)


#: The training DAG's chain, the same whether composed by hand (the fraud example) or generated from a spec.
TRAINING_CHAIN = (
    "retraining_cooldown",
    "ingest",
    "validate",
    "apply_features",
    "materialize_features",
    "build_training_set",
    "train",
    "evaluation_gate",
    "deploy",
    "smoke_test",
)


def assert_chain(dag, chain=TRAINING_CHAIN) -> None:
    """Each task of ``chain`` runs directly before the next one in ``dag``."""
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids, f"{upstream} -> {downstream}"
