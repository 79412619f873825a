"""Builds the drift check's Feast world through the product operators: ingest, validate, Feast, training set."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from include.fraud_example import FEATURE_VIEWS
from mlops_provider.operators.feast import FeastApplyOperator, FeastMaterializeOperator, FeastTrainingSetOperator
from mlops_provider.operators.ingestion import IngestionOperator
from mlops_provider.operators.validation import DataValidationOperator


@dag(
    dag_id="drift_feast_world",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
    tags=["test"],
    params={
        "start": Param("", type="string"),
        "end": Param("", type="string"),
        "train_end": Param("", type="string"),
    },
)
def drift_feast_world():
    ingest = IngestionOperator(
        task_id="ingest", dataset="transactions", partition_start="{{ params.start }}", partition_end="{{ params.end }}"
    )
    validate = DataValidationOperator(
        task_id="validate",
        dataset="transactions",
        contract="include/contracts/transactions.yaml",
        partition_start="{{ params.start }}",
        partition_end="{{ params.end }}",
    )
    apply_features = FeastApplyOperator(task_id="apply_features")
    materialize = FeastMaterializeOperator(
        task_id="materialize_features", start="{{ params.start }}", end="{{ params.end }}", feature_views=FEATURE_VIEWS
    )
    training_set = FeastTrainingSetOperator(
        task_id="build_training_set",
        dataset="transactions",
        feature_service="fraud_model_v1",
        label_column="is_fraud",
        partition_start="{{ params.start }}",
        partition_end="{{ params.train_end }}",
    )
    ingest >> validate >> apply_features >> materialize >> training_set


drift_feast_world()
