"""The drift_monitoring DAG: the asset event can only come from the task that runs when drift exceeds the policy."""

from __future__ import annotations

from tests.airflow_helpers import load_dag


def test_drift_monitoring_emits_the_asset_only_from_the_short_circuited_task():
    dag = load_dag("drift_monitoring")
    tasks = dag.task_dict
    assert set(tasks) == {"check_drift", "drift_exceeds_policy", "emit_drift_event", "alert_drift"}
    assert [o.name for o in tasks["emit_drift_event"].outlets] == ["drift.fraud_detector"]
    assert all(not tasks[t].outlets for t in ("check_drift", "drift_exceeds_policy", "alert_drift"))
    assert tasks["drift_exceeds_policy"].upstream_task_ids == {"check_drift"}
    assert tasks["emit_drift_event"].upstream_task_ids == {"check_drift", "drift_exceeds_policy"}
    assert tasks["alert_drift"].upstream_task_ids == {"check_drift", "drift_exceeds_policy"}
    assert tasks["drift_exceeds_policy"].ignore_downstream_trigger_rules is True
    assert [link.name for link in tasks["check_drift"].operator_extra_links] == ["Evidently drift report"]
    assert tasks["check_drift"].on_failure_callback
    assert dag.schedule == "0 */6 * * *"
