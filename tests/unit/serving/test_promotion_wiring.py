"""Which task holds the promotion lock: the gate keeps it for a deploy task downstream, else releases it."""

from __future__ import annotations

import pendulum

from mlops_provider.operators.kserve import ModelDeployOperator
from mlops_provider.operators.mlflow import MlflowEvaluationGateOperator


def _gate(**kwargs) -> MlflowEvaluationGateOperator:
    return MlflowEvaluationGateOperator(
        task_id="evaluation_gate", model_name="model-a", candidate={}, training_set={}, **kwargs
    )


def test_the_gate_holds_the_lock_only_for_a_deploy_task_downstream():
    from airflow.sdk import DAG

    with DAG("with_deploy", schedule=None, start_date=pendulum.datetime(2024, 1, 1)):
        gate = _gate()
        gate >> ModelDeployOperator(task_id="deploy", model_name="model-a", candidate={})
    assert gate._deploy_follows()
    with DAG("gate_only", schedule=None, start_date=pendulum.datetime(2024, 1, 1)):
        alone = _gate()
    assert not alone._deploy_follows()
    assert _gate(hold_promotion_lock=True)._deploy_follows()
