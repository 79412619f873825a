"""
### Label feedback

Fraud is confirmed days after the payment (chargebacks, investigations). Daily, join the labels that
arrived (`<data_root>/labels/transactions/dt=<arrival day>/`, rows of `request_id`, `request_row`,
`is_fraud`) to the endpoint's prediction log of the last `max_delay_days` days, record the live
ROC AUC per model version and prediction day (`<data_root>/live_performance/fraud_detector/`, shown on
the MLOps page), and compare the `champion`'s with the holdout ROC AUC its training run recorded.

`label_feedback` -> `drift_exceeds_policy` (short-circuit) -> `emit_drift_event` + `alert_drift`: only
when the live score dropped by more than `max_performance_drop`, on at least `min_labeled_rows`
labeled rows, is `drift.fraud_detector` emitted (with the reason), which schedules `ml_training_pipeline`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from include.fraud_example import DATASET, FRAUD_MODEL_DRIFT, LABEL_COLUMN, MODEL_NAME
from mlops_provider.drift.task_group import label_feedback_tasks


@dag(
    dag_id="label_feedback",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["mlops", "monitoring"],
    default_args={"owner": "mlops", "retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params={
        "as_of": Param("", type="string", description="Last day (YYYY-MM-DD) of the window; empty: the run's date."),
        "max_delay_days": Param(
            7, type="integer", minimum=0, description="Days a label may arrive after its prediction."
        ),
        "min_labeled_rows": Param(200, type="integer", minimum=1, description="Fewest labeled rows for a verdict."),
        "max_performance_drop": Param(0.05, type="number", minimum=0, description="Largest tolerated ROC AUC drop."),
    },
)
def label_feedback():
    label_feedback_tasks(
        model_name=MODEL_NAME,
        dataset=DATASET,
        label_column=LABEL_COLUMN,
        drift_asset=FRAUD_MODEL_DRIFT,
        as_of="{{ params.as_of }}",
        max_delay_days="{{ params.max_delay_days }}",
        min_labeled_rows="{{ params.min_labeled_rows }}",
        policy='{"max_performance_drop": {{ params.max_performance_drop }}}',
    )


label_feedback()
