"""Small DAGs that drive the data-plane operators through Airflow, with their inputs in ``conf``.

A failing task's exception (type and message) is written by ``on_failure_callback`` to
``$AIRFLOW_HOME/test-failures/<dag_id>/<task_id>.json`` so tests can assert on the message users see.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag

from include.fraud_example import FEATURE_VIEWS, FRAUD_FEATURES, TRANSACTIONS_TRAINING_SET
from mlops_provider.assets import raw_asset, validated_asset
from mlops_provider.operators.feast import FeastApplyOperator, FeastMaterializeOperator, FeastTrainingSetOperator
from mlops_provider.operators.ingestion import IngestionOperator
from mlops_provider.operators.validation import DataValidationOperator
from mlops_provider.sensors.ingestion import SourceDataSensor


def record_failure(context) -> None:
    """Keep the failure's type and message where the test can read them."""
    ti = context["ti"]
    error = context.get("exception")
    folder = Path(os.environ["AIRFLOW_HOME"]) / "test-failures" / ti.dag_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{ti.task_id}.json").write_text(
        json.dumps({"type": type(error).__name__, "message": str(error), "run_id": ti.run_id})
    )


DEFAULTS = {"owner": "tests", "retries": 0, "on_failure_callback": record_failure}
START = pendulum.datetime(2026, 1, 1, tz="UTC")


@dag(
    dag_id="data_ingest_validate",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    tags=["test"],
    params={
        "dataset": Param("transactions", type="string"),
        "start": Param("", type="string"),
        "end": Param("", type="string"),
        "source_uri": Param("", type="string"),
        "csv_delimiter": Param(",", type="string"),
        "contract": Param("include/contracts/transactions.yaml", type="string"),
        "max_invalid_share": Param("", type="string"),
    },
)
def data_ingest_validate():
    ingest = IngestionOperator(
        task_id="ingest",
        dataset="{{ params.dataset }}",
        partition_start="{{ params.start }}",
        partition_end="{{ params.end }}",
        source_uri="{{ params.source_uri }}",
        csv_delimiter="{{ params.csv_delimiter }}",
        outlets=[raw_asset("transactions")],
    )
    validate = DataValidationOperator(
        task_id="validate",
        dataset="{{ params.dataset }}",
        contract="{{ params.contract }}",
        partition_start="{{ params.start }}",
        partition_end="{{ params.end }}",
        max_invalid_share="{{ params.max_invalid_share }}",
        outlets=[validated_asset("transactions")],
    )
    ingest >> validate


data_ingest_validate()


@dag(
    dag_id="data_source_sensor",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    tags=["test"],
    params={"dataset": Param("transactions", type="string"), "day": Param("", type="string")},
)
def data_source_sensor():
    SourceDataSensor(
        task_id="wait_poke",
        dataset="{{ params.dataset }}",
        partition_date="{{ params.day }}",
        poke_interval=1,
        timeout=2,
        mode="poke",
        deferrable=False,
    )
    SourceDataSensor(
        task_id="wait_deferred",
        dataset="{{ params.dataset }}",
        partition_date="{{ params.day }}",
        poke_interval=1,
        timeout=3,
        deferrable=True,
    )


data_source_sensor()


@dag(
    dag_id="data_features",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    tags=["test"],
    params={
        "start": Param("", type="string"),
        "end": Param("", type="string"),
        "chunk_days": Param("", type="string"),
    },
)
def data_features():
    apply_features = FeastApplyOperator(task_id="apply_features")
    materialize = FeastMaterializeOperator(
        task_id="materialize_features",
        start="{{ params.start }}",
        end="{{ params.end }}",
        chunk_days="{{ params.chunk_days }}",
        feature_views=FEATURE_VIEWS,
        outlets=[FRAUD_FEATURES],
    )
    training_set = FeastTrainingSetOperator(
        task_id="build_training_set",
        dataset="transactions",
        feature_service="fraud_model_v1",
        label_column="is_fraud",
        partition_start="{{ params.start }}",
        partition_end="{{ params.end }}",
        outlets=[TRANSACTIONS_TRAINING_SET],
    )
    apply_features >> materialize >> training_set


data_features()
