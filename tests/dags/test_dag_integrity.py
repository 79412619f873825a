"""Every product DAG parses, is documented, owned, tagged, retried, and has no catchup surprises."""

from __future__ import annotations

import pytest

from tests.airflow_helpers import assert_chain
from tests.conftest import REPO_ROOT

EXPECTED_DAGS = {
    "ml_training_pipeline",
    "drift_monitoring",
    "feature_materialization",
    "label_feedback",
    "model_reproduction",
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO_ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_expected_dags_exist(dagbag):
    assert EXPECTED_DAGS <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_hygiene(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.doc_md and len(dag.doc_md) > 100, "doc_md explains the DAG"
    assert dag.tags and "mlops" in dag.tags
    assert dag.catchup is False, "catchup must be explicit and off: no surprise backfills"
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.owner == "mlops", f"{task.task_id} has no owner"
        assert task.retries >= 1, f"{task.task_id} is not retried"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_no_cycles(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    dag.check_cycle()  # raises AirflowDagCycleException on a cycle
    assert len(dag.topological_sort()) == len(dag.tasks)


def test_training_pipeline_chain(dagbag):
    dag = dagbag.dags["ml_training_pipeline"]
    assert_chain(dag)


def test_training_pipeline_is_triggered_by_validated_data_or_drift(dagbag):
    dag = dagbag.dags["ml_training_pipeline"]
    condition = dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAny", "either new validated data or a drift verdict triggers training"
    assert {asset.name for asset in condition.objects} == {"validated.transactions", "drift.fraud_detector"}
