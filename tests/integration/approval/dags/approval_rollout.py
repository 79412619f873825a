"""Gate -> human approval -> rollout, driven through the real scheduler and REST API by the approval tests.

Inputs come from ``dag_run.conf`` (the candidate the trainer registered and its training set); the same operators as
the spec's training DAG, with fast rollout analysis (``tests/chaos/dag_defaults.py``). ``approval_rollout_timeout``
waits only a few seconds for an answer.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag

from mlops_provider.operators.approval import ModelApprovalOperator
from mlops_provider.operators.kserve import ModelDeployOperator
from mlops_provider.operators.mlflow import MlflowEvaluationGateOperator
from tests.chaos.dag_defaults import COMMON, CONF, DEPLOY

#: How long ``approval_rollout_timeout`` waits for a person. Longer than a loaded scheduler takes to process the exit
#: of the worker that parked the task: a timeout that resumes the task before that is Airflow 3.3's early-answer
#: race (the late "success" event fails the resumed try; see ``wait_parked`` in the test).
SHORT_TIMEOUT = timedelta(seconds=20)


def _gate_approve_deploy(dag_id: str, response_timeout: timedelta):
    @dag(dag_id=dag_id, **{**COMMON, "tags": ["approval"]})
    def rollout():
        gate = MlflowEvaluationGateOperator(
            task_id="evaluation_gate",
            model_name=CONF("model_name"),
            candidate=CONF("candidate"),
            training_set=CONF("training_set"),
            promotion_lock_ttl=7200 + response_timeout.total_seconds(),
        )
        approve = ModelApprovalOperator(
            task_id="approve_rollout",
            model_name=CONF("model_name"),
            decision=gate.output,
            response_timeout=response_timeout,
        )
        deploy = ModelDeployOperator(task_id="deploy", candidate=gate.output, **DEPLOY)
        gate >> approve >> deploy

    return rollout()


approval_rollout = _gate_approve_deploy("approval_rollout", timedelta(hours=1))
approval_rollout_timeout = _gate_approve_deploy("approval_rollout_timeout", SHORT_TIMEOUT)
