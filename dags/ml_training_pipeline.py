"""### ML training pipeline

Takes the fraud model from raw transactions to a served model:
ingest the window's partitions, validate them (bad rows to quarantine), apply and materialize the
Feast features, build a point-in-time training set, train XGBoost (local, Kubernetes GPU pod or
Vertex AI, by configuration), gate the new version against the `champion`, deploy it (canary on
KServe, blue/green locally) and smoke-test the endpoint.

Runs when new validated data lands or when a drift check asks for retraining
(`validated.transactions | drift.fraud_detector`). A cooldown keeps drift storms from becoming
retraining storms. Trigger it by hand with `as_of` to train on a given window.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from include.fraud_example import (
    CONTRACT,
    DATASET,
    FEATURE_SERVICE,
    FEATURE_VIEWS,
    FRAUD_MODEL,
    FRAUD_MODEL_DRIFT,
    GATE_SEGMENTS,
    LABEL_COLUMN,
    MODEL_NAME,
    TRANSACTIONS_TRAINING_SET,
    VALIDATED_TRANSACTIONS,
)
from mlops_provider.names import FEAST_REGISTRY_POOL, PROMOTION_POOL
from mlops_provider.notifications import alert_notifier
from mlops_provider.operators.approval import ModelApprovalOperator
from mlops_provider.operators.feast import FeastApplyOperator, FeastMaterializeOperator, FeastTrainingSetOperator
from mlops_provider.operators.ingestion import IngestionOperator
from mlops_provider.operators.kserve import ModelDeployOperator, ModelEndpointSmokeTestOperator
from mlops_provider.operators.mlflow import MlflowEvaluationGateOperator
from mlops_provider.operators.retraining import RetrainingCooldownOperator
from mlops_provider.operators.training import training_operator_class
from mlops_provider.operators.validation import DataValidationOperator

WINDOW_START = "{{ macros.ds_add(params.as_of or (dag_run.run_after | ds), -(params.window_days - 1)) }}"
WINDOW_END = "{{ params.as_of or (dag_run.run_after | ds) }}"
# A person approves each rollout in the Airflow UI (required actions) when set to how long to wait for an answer
# (no answer in time counts as a rejection); None: the gate's decision alone starts the rollout.
APPROVAL_TIMEOUT: pendulum.Duration | None = None


@dag(
    dag_id="ml_training_pipeline",
    schedule=(VALIDATED_TRANSACTIONS | FRAUD_MODEL_DRIFT),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["mlops", "training"],
    default_args={"owner": "mlops", "retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params={
        "as_of": Param(
            "", type="string", description="Last day (YYYY-MM-DD) of the training window; empty: the run's date."
        ),
        "window_days": Param(21, type="integer", minimum=1, description="Days of data in the training window."),
    },
)
def ml_training_pipeline():
    cooldown = RetrainingCooldownOperator(task_id="retraining_cooldown", model_name=MODEL_NAME)

    ingest = IngestionOperator(
        task_id="ingest",
        dataset=DATASET,
        partition_start=WINDOW_START,
        partition_end=WINDOW_END,
    )
    validate = DataValidationOperator(
        task_id="validate",
        dataset=DATASET,
        contract=CONTRACT,
        partition_start=WINDOW_START,
        partition_end=WINDOW_END,
    )
    apply_features = FeastApplyOperator(task_id="apply_features", pool=FEAST_REGISTRY_POOL)
    materialize = FeastMaterializeOperator(
        task_id="materialize_features",
        pool=FEAST_REGISTRY_POOL,
        start=WINDOW_START,
        end=WINDOW_END,
        feature_views=FEATURE_VIEWS,
    )
    training_set = FeastTrainingSetOperator(
        task_id="build_training_set",
        dataset=DATASET,
        feature_service=FEATURE_SERVICE,
        label_column=LABEL_COLUMN,
        partition_start=WINDOW_START,
        partition_end=WINDOW_END,
        outlets=[TRANSACTIONS_TRAINING_SET],
    )
    # The backend ([mlops] training_backend) picks the operator class when the DAG is parsed.
    train = training_operator_class()(
        task_id="train",
        model_name=MODEL_NAME,
        training_set=training_set.output,
        params_file="include/trainer/params.yaml",
    )
    gate = MlflowEvaluationGateOperator(
        task_id="evaluation_gate",
        model_name=MODEL_NAME,
        candidate=train.output,
        training_set=training_set.output,
        criteria={"segments": GATE_SEGMENTS},
        pool=PROMOTION_POOL,
        # The promotion lock outlasts the wait for the approval.
        promotion_lock_ttl=7200.0 + (APPROVAL_TIMEOUT.total_seconds() if APPROVAL_TIMEOUT else 0),
    )
    deploy = ModelDeployOperator(
        task_id="deploy",
        model_name=MODEL_NAME,
        candidate=gate.output,
        outlets=[FRAUD_MODEL],
        pool=PROMOTION_POOL,
        on_failure_callback=alert_notifier(title="Rollout failed: traffic stays on the previous version"),
    )
    smoke_test = ModelEndpointSmokeTestOperator(
        task_id="smoke_test",
        endpoint=deploy.output,
        training_set=training_set.output,
        on_failure_callback=alert_notifier(title="Smoke test of the deployed model failed"),
    )

    cooldown >> ingest >> validate >> apply_features >> materialize >> training_set
    if APPROVAL_TIMEOUT is None:
        train >> gate >> deploy >> smoke_test
    else:
        approve = ModelApprovalOperator(
            task_id="approve_rollout", model_name=MODEL_NAME, decision=gate.output, response_timeout=APPROVAL_TIMEOUT
        )
        train >> gate >> approve >> deploy >> smoke_test


ml_training_pipeline()
