"""``drift_monitoring``'s tasks for a test model: the same factory, parameters from ``conf``."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from mlops_provider.assets import drift_asset
from mlops_provider.drift.task_group import drift_check_tasks

TEST_MODEL = "drift_check_model"


@dag(
    dag_id="drift_check",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    default_args={"retries": 0},
    tags=["test"],
    params={
        "model_name": Param(TEST_MODEL, type="string"),
        "dataset": Param("drift_check_transactions", type="string"),
        "start": Param("2031-03-01", type="string"),
        "end": Param("2031-03-03", type="string"),
        "policy": Param({}, type="object"),
    },
)
def drift_check():
    drift_check_tasks(
        model_name="{{ params.model_name }}",
        dataset="{{ params.dataset }}",
        current_start="{{ params.start }}",
        current_end="{{ params.end }}",
        drift_asset=drift_asset(TEST_MODEL),
        policy="{{ params.policy }}",
        report_sample_rows=2000,
    )


drift_check()
