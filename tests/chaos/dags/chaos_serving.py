"""Chaos DAGs of promotion and rollout (evaluation gate, KServe canary, local blue/green)."""

from __future__ import annotations

from airflow.sdk import dag

from mlops_provider.operators.kserve import ModelDeployOperator
from mlops_provider.operators.mlflow import MlflowEvaluationGateOperator
from tests.chaos.dag_defaults import COMMON, CONF, DEPLOY


def _gate_deploy(dag_id: str, retries: int = 1):
    @dag(dag_id=dag_id, **{**COMMON, "default_args": {**COMMON["default_args"], "retries": retries}})
    def chaos():
        gate = MlflowEvaluationGateOperator(
            task_id="evaluation_gate",
            model_name=CONF("model_name"),
            candidate=CONF("candidate"),
            training_set=CONF("training_set"),
            criteria=CONF("criteria"),
        )
        ModelDeployOperator(task_id="deploy", candidate=gate.output, **DEPLOY)

    return chaos()


def _deploy(dag_id: str, **options):
    @dag(dag_id=dag_id, **COMMON)
    def chaos():
        ModelDeployOperator(task_id="deploy", candidate=CONF("candidate"), **{**DEPLOY, **options})

    return chaos()


chaos_gate_after_decision = _gate_deploy("chaos_gate_after_decision")
chaos_deploy_after_patch = _deploy("chaos_deploy_after_patch")
chaos_deploy_mid_canary = _deploy("chaos_deploy_mid_canary")
chaos_deploy_before_promote = _deploy("chaos_deploy_before_promote")
chaos_deploy_local = _deploy("chaos_deploy_local", backend="local", local_transformer=False)
# No retries: a retry after the winner finished would legitimately re-gate against the new champion.
chaos_race = _gate_deploy("chaos_race", retries=0)
