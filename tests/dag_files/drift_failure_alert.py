"""A task that fails like a rollout does, with the bundle's alert notifier as its failure callback."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from mlops_provider.exceptions import RolloutFailedError
from mlops_provider.notifications import alert_notifier


@dag(
    dag_id="drift_failure_alert",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
)
def drift_failure_alert():
    @task(retries=0, on_failure_callback=alert_notifier(title="Rollout of fraud_detector failed"))
    def deploy() -> None:
        raise RolloutFailedError("canary did not become ready", reason="ProgressDeadlineExceeded", rolled_back=True)

    deploy()


drift_failure_alert()
