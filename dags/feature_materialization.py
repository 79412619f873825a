"""### Feature materialization

Every day: ingest that day's raw transactions into the raw zone, validate them (bad rows to
quarantine with reasons), and materialize the new interval of Feast features into the online
store, so serving reads fresh features. Idempotent per data interval: a rerun replaces that
day's partitions and re-materializes the same interval.

Its validated-data asset event is what schedules `ml_training_pipeline`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from include.fraud_example import (
    CONTRACT,
    DATASET,
    FEATURE_VIEWS,
    FRAUD_FEATURES,
    RAW_TRANSACTIONS,
    VALIDATED_TRANSACTIONS,
)
from mlops_provider.names import FEAST_REGISTRY_POOL
from mlops_provider.operators.feast import FeastApplyOperator, FeastMaterializeOperator
from mlops_provider.operators.ingestion import IngestionOperator
from mlops_provider.operators.validation import DataValidationOperator
from mlops_provider.sensors.ingestion import SourceDataSensor


@dag(
    dag_id="feature_materialization",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["mlops", "features"],
    default_args={"owner": "mlops", "retries": 3, "retry_delay": pendulum.duration(minutes=5)},
)
def feature_materialization():
    wait_for_source = SourceDataSensor(
        task_id="wait_for_source",
        dataset=DATASET,
        partition_date="{{ ds }}",
        timeout=6 * 60 * 60,
        mode="reschedule",
    )
    ingest = IngestionOperator(
        task_id="ingest",
        dataset=DATASET,
        partition_start="{{ ds }}",
        partition_end="{{ ds }}",
        outlets=[RAW_TRANSACTIONS],
    )
    validate = DataValidationOperator(
        task_id="validate",
        dataset=DATASET,
        contract=CONTRACT,
        partition_start="{{ ds }}",
        partition_end="{{ ds }}",
        outlets=[VALIDATED_TRANSACTIONS],
    )
    apply_features = FeastApplyOperator(task_id="apply_features", pool=FEAST_REGISTRY_POOL)
    materialize = FeastMaterializeOperator(
        task_id="materialize_features",
        pool=FEAST_REGISTRY_POOL,
        start="{{ ds }}",
        end="{{ ds }}",
        feature_views=FEATURE_VIEWS,
        outlets=[FRAUD_FEATURES],
    )
    wait_for_source >> ingest >> validate >> apply_features >> materialize


feature_materialization()
