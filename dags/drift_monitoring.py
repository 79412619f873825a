"""
### Drift monitoring

On a schedule, compare the latest validated window (and the predictions the endpoint logged) with
the training-set snapshot of the current `champion`, found through its MLflow lineage tags.
The fast drift engine applies Evidently's default per-feature tests to every row; the Evidently
HTML report (on a sample) and a JSON summary go to the artifact store and to MLflow (extra link on
`check_drift`). Before the first promotion there is no `champion`: the check skips.

`check_drift` -> `drift_exceeds_policy` (short-circuit) -> `emit_drift_event` + `alert_drift`.
Only when drift exceeds the policy (`[mlops] drift_policy`: share of drifted features, critical
features, performance drop) does `emit_drift_event` run and emit a `drift.fraud_detector` asset event
carrying the verdict in its extra, which schedules `ml_training_pipeline`; a skipped task emits
nothing, so no drift queues no retraining.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from include.fraud_example import DATASET, FRAUD_MODEL_DRIFT, MODEL_NAME
from mlops_provider.drift.task_group import drift_check_tasks


@dag(
    dag_id="drift_monitoring",
    schedule="0 */6 * * *",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["mlops", "monitoring"],
    default_args={"owner": "mlops", "retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params={
        "as_of": Param(
            "", type="string", description="Last day (YYYY-MM-DD) of the current window; empty: the run's date."
        ),
        "window_days": Param(3, type="integer", minimum=1, description="Days of validated data in the current window."),
    },
)
def drift_monitoring():
    drift_check_tasks(
        model_name=MODEL_NAME,
        dataset=DATASET,
        current_start="{{ macros.ds_add(params.as_of or (dag_run.run_after | ds), -(params.window_days - 1)) }}",
        current_end="{{ params.as_of or (dag_run.run_after | ds) }}",
        drift_asset=FRAUD_MODEL_DRIFT,
    )


drift_monitoring()
