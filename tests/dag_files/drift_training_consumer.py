"""Stand-in for ``ml_training_pipeline`` when that DAG cannot be imported in this checkout.

Scheduled exactly like the real pipeline (``validated.transactions | drift.fraud_detector``) and
starting, like it, with ``RetrainingCooldownOperator``; the asset-scheduling test uses the real DAG
whenever it imports.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, dag

from include.fraud_example import FRAUD_MODEL_DRIFT, VALIDATED_TRANSACTIONS
from mlops_provider.operators.retraining import RetrainingCooldownOperator


@dag(
    dag_id="drift_training_consumer",
    schedule=(VALIDATED_TRANSACTIONS | FRAUD_MODEL_DRIFT),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["test"],
    params={"as_of": Param("", type="string")},
    render_template_as_native_obj=True,
)
def drift_training_consumer():
    cooldown = RetrainingCooldownOperator(
        task_id="retraining_cooldown",
        model_name="consumer_test_model",
        cooldown_minutes=60,
        daily_cap=2,
    )
    cooldown >> EmptyOperator(task_id="train")


drift_training_consumer()
