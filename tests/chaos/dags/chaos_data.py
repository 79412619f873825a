"""Chaos DAGs of the data plane (ingestion, validation) and the retraining cooldown."""

from __future__ import annotations

from airflow.sdk import dag

from include.fraud_example import FEATURE_VIEWS
from mlops_provider.operators.feast import FeastApplyOperator, FeastMaterializeOperator
from mlops_provider.operators.ingestion import IngestionOperator
from mlops_provider.operators.retraining import RetrainingCooldownOperator
from mlops_provider.operators.validation import DataValidationOperator
from tests.chaos.dag_defaults import COMMON, CONF


def _ingested_and_validated():
    """Ingest then validate the window of ``conf['dataset']``; return the validation task."""
    window = {"partition_start": CONF("start"), "partition_end": CONF("end")}
    ingest = IngestionOperator(task_id="ingest", dataset=CONF("dataset"), **window)
    validate = DataValidationOperator(
        task_id="validate", dataset=CONF("dataset"), contract="include/contracts/transactions.yaml", **window
    )
    ingest >> validate
    return validate


def _ingest_validate(dag_id: str):
    @dag(dag_id=dag_id, **COMMON)
    def chaos():
        _ingested_and_validated()

    return chaos()


def _cooldown(dag_id: str):
    @dag(dag_id=dag_id, **COMMON)
    def chaos():
        RetrainingCooldownOperator(task_id="retraining_cooldown", model_name=CONF("model_name"), cooldown_minutes=60)

    return chaos()


chaos_ingest_mid_write = _ingest_validate("chaos_ingest_mid_write")
chaos_validation_mid_write = _ingest_validate("chaos_validation_mid_write")
chaos_cooldown = _cooldown("chaos_cooldown")


def _materialize(dag_id: str):
    @dag(dag_id=dag_id, **COMMON)
    def chaos():
        materialize = FeastMaterializeOperator(
            task_id="materialize_features",
            start=CONF("start"),
            end=CONF("end"),
            feature_views=FEATURE_VIEWS,
            chunk_days=1,  # three chunks: the kill lands after the first, the retry resumes after it
        )
        _ingested_and_validated() >> FeastApplyOperator(task_id="apply_features") >> materialize

    return chaos()


chaos_materialize = _materialize("chaos_materialize")
