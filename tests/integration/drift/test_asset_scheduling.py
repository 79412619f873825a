"""A drift verdict over the policy queues exactly one training run through the drift asset; none queues none.

The producer runs the real operators of ``drift_monitoring``'s tail through Airflow (``dag.test``),
so the asset event is registered by Airflow's own task-success path (``AssetManager``); the
scheduler's own ``SchedulerJobRunner._create_dagruns_for_dags`` then turns queued asset events into
DagRuns, against the SQLite metadata DB of the test session.
"""

from __future__ import annotations

import pytest

from include.airflow_runner import asset_triggered_runs, scheduler_pass
from tests.airflow_helpers import load_dag, run_dag, task_states, task_xcom

pytestmark = pytest.mark.integration

VERDICT = {
    "drift_detected": True,
    "drift_share": 0.6,
    "drifted_features": ["amount", "hour", "channel"],
    "reasons": ["share of drifted features 0.60 >= 0.50"],
    "model_name": "fraud_detector",
    "champion_version": "3",
    "report_uri": "file:///tmp/reports/drift/fraud_detector/x/report.html",
    "summary_uri": "file:///tmp/reports/drift/fraud_detector/x/summary.json",
    "reference_uri": "file:///tmp/training_sets/transactions/abc/data.parquet",
    "mlflow_run_id": "r1",
    "window": ["2026-11-20", "2026-11-22"],
}


def _consumer_dag_id() -> str:
    """The real training pipeline when it imports in this checkout, else its stand-in with the same schedule."""
    try:
        load_dag("ml_training_pipeline")
    except Exception:
        return "drift_training_consumer"
    return "ml_training_pipeline"


def _prepare(consumer: str) -> None:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        # Runs queued by an earlier test never execute here; finish them, since the consumer has
        # max_active_runs=1 and an active run holds back the next one (as in production).
        session.query(DagRun).filter(
            DagRun.dag_id == consumer, DagRun.state.in_([DagRunState.QUEUED, DagRunState.RUNNING])
        ).update({DagRun.state: DagRunState.SUCCESS}, synchronize_session=False)
        session.query(AssetDagRunQueue).filter(AssetDagRunQueue.target_dag_id == consumer).delete()
        # Only the consumer may get runs from the scheduler pass below.
        session.query(DagModel).update({DagModel.is_paused: True})
        # The scheduler recomputes this flag when a run finishes; runs finished above by hand need it reset.
        session.query(DagModel).filter(DagModel.dag_id == consumer).update(
            {DagModel.is_paused: False, DagModel.exceeds_max_non_backfill: False}
        )


def _queued(consumer: str) -> int:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(AssetDagRunQueue).filter(AssetDagRunQueue.target_dag_id == consumer).count()


def test_one_drift_event_queues_exactly_one_training_run_and_no_drift_queues_none():
    # Parse and register both bundles (producer and consumer) in the metadata DB first.
    run_dag("drift_asset_producer", conf={"verdict": {**VERDICT, "drift_detected": False, "reasons": []}})
    consumer = _consumer_dag_id()
    _prepare(consumer)
    before = asset_triggered_runs(consumer)

    # No drift: the short-circuit skips the emitting task; nothing is queued, the scheduler creates nothing.
    no_drift = run_dag("drift_asset_producer", conf={"verdict": {**VERDICT, "drift_detected": False, "reasons": []}})
    assert task_states(no_drift) == {
        "drift_exceeds_policy": "success",
        "emit_drift_event": "skipped",
        "alert_drift": "skipped",
    }
    assert _queued(consumer) == 0
    scheduler_pass()
    assert asset_triggered_runs(consumer) == before

    # Drift over the policy: one event with the verdict in its extra, one queued run, one DagRun.
    drift = run_dag("drift_asset_producer", conf={"verdict": VERDICT})
    assert task_states(drift) == {
        "drift_exceeds_policy": "success",
        "emit_drift_event": "success",
        "alert_drift": "success",
    }
    assert task_xcom(drift, "emit_drift_event")["drifted_features"] == ["amount", "hour", "channel"]
    assert _queued(consumer) == 1
    scheduler_pass()
    after = asset_triggered_runs(consumer)
    new = [r for r in after if r not in before]
    assert len(new) == 1, new
    # The run consumes the drift event, plus any validated-data events other tests emitted since the
    # consumer's previous asset-triggered run (the real pipeline is scheduled on validated | drift).
    assert "drift.fraud_detector" in new[0][1]
    assert set(new[0][1]) <= {"drift.fraud_detector", "validated.transactions"}
    assert _queued(consumer) == 0

    # The event carries the verdict.
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        event = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "drift.fraud_detector")
            .order_by(AssetEvent.id.desc())
            .first()
        )
        assert event.extra["drift_share"] == 0.6
        assert event.extra["reasons"] == VERDICT["reasons"]

    # A second scheduler pass with nothing new queues nothing more.
    scheduler_pass()
    assert len(asset_triggered_runs(consumer)) == len(after)


def test_a_drift_storm_before_the_scheduler_runs_still_queues_one_training_run():
    consumer = _consumer_dag_id()
    _prepare(consumer)
    before = asset_triggered_runs(consumer)
    for _ in range(3):
        dag_run = run_dag("drift_asset_producer", conf={"verdict": VERDICT})
        assert task_states(dag_run)["emit_drift_event"] == "success"
    assert _queued(consumer) == 1
    scheduler_pass()
    new = [r for r in asset_triggered_runs(consumer) if r not in before]
    assert len(new) == 1
    assert "drift.fraud_detector" in new[0][1]
    assert set(new[0][1]) <= {"drift.fraud_detector", "validated.transactions"}
