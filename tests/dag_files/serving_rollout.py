"""ModelDeployOperator and ModelEndpointSmokeTestOperator through Airflow, for the serving tests.

The candidate (the evaluation gate's XCom), the backend and the rollout knobs come from the run's conf, so each
test drives one rollout scenario against the fake cluster or the local backend.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from mlops_provider.operators.kserve import ModelDeployOperator, ModelEndpointSmokeTestOperator

FAST = {
    "analysis_interval": 0.1,
    "analysis_iterations": 2,
    "failure_threshold": 2,
    "smoke_requests": 4,
    "poll_interval": 0.1,
    "max_latency_ms": 2000,
    "progress_deadline": 30,
}


def _dag(dag_id: str, *, deferrable: bool, **options):
    @dag(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        render_template_as_native_obj=True,
        params={"candidate": {}, "backend": "kserve", "model_name": "serving_fraud_detector"},
        tags=["test", "serving"],
    )
    def rollout():
        deploy = ModelDeployOperator(
            task_id="deploy",
            model_name="{{ params.model_name }}",
            candidate="{{ params.candidate }}",
            backend="{{ params.backend }}",
            deferrable=deferrable,
            **{**FAST, **options},
        )
        ModelEndpointSmokeTestOperator(task_id="smoke_test", endpoint=deploy.output)

    return rollout()


serving_rollout_sync = _dag("serving_rollout_sync", deferrable=False)
serving_rollout_deferrable = _dag("serving_rollout_deferrable", deferrable=True)
serving_rollout_stepped = _dag(
    "serving_rollout_stepped", deferrable=True, canary_traffic_percent=10, step_weight=20, max_weight=50
)
serving_rollout_short_deadline = _dag("serving_rollout_short_deadline", deferrable=False, progress_deadline=3)
serving_rollout_raw_refuse = _dag("serving_rollout_raw_refuse", deferrable=False, raw_deployment_strategy="refuse")
serving_rollout_strict = _dag("serving_rollout_strict", deferrable=False, prediction_range=(2.0, 3.0))
