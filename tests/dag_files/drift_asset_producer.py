"""The tail of ``drift_monitoring`` (short-circuit -> drift asset event), fed a verdict through ``conf``.

Used by the asset-scheduling test: it runs the same operators and wiring as the real DAG after
``check_drift``, so the event (or its absence) goes through Airflow's real outlet/asset machinery.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import dag

from include.fraud_example import FRAUD_MODEL_DRIFT
from mlops_provider.operators.evidently import DriftAlertOperator, DriftAssetEventOperator


@dag(
    dag_id="drift_asset_producer",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["test"],
)
def drift_asset_producer():
    exceeds = ShortCircuitOperator(
        task_id="drift_exceeds_policy",
        python_callable=lambda verdict: bool(verdict and verdict.get("drift_detected")),
        op_args=["{{ dag_run.conf['verdict'] }}"],
        ignore_downstream_trigger_rules=True,
    )
    emit = DriftAssetEventOperator(
        task_id="emit_drift_event", verdict="{{ dag_run.conf['verdict'] }}", outlets=[FRAUD_MODEL_DRIFT]
    )
    alert = DriftAlertOperator(task_id="alert_drift", verdict="{{ dag_run.conf['verdict'] }}")
    exceeds >> [emit, alert]


drift_asset_producer()
