"""
### Model reproduction

Trigger with `{"model_name": ..., "version": ...}` to answer "can we rebuild this model?": the version's
training set is rebuilt from the data partition versions its manifest recorded (never today's data), the
trainer runs again with the recorded parameters and seed (refused when this worker's trainer code differs
from the recorded one), the result is registered as `<model>-reproduced`, and both models score the same
rows. The task's result (XCom) is the report: hashes, `max_abs_diff`, `identical`. A partition version that
retention deleted fails the task, naming the partition, the version and `[mlops] partition_versions_retained`.

The same as `make reproduce MODEL=<name> VERSION=<n>`, from the Airflow UI.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from include.fraud_example import MODEL_NAME
from mlops_provider.operators.reproduction import ModelReproductionOperator


@dag(
    dag_id="model_reproduction",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["mlops", "lineage"],
    default_args={"owner": "mlops", "retries": 1, "retry_delay": pendulum.duration(minutes=1)},
    params={
        "model_name": Param(MODEL_NAME, type="string", description="Registered model."),
        "version": Param("1", type="string", description="The model version to rebuild."),
    },
)
def model_reproduction():
    ModelReproductionOperator(task_id="reproduce", model_name="{{ params.model_name }}", version="{{ params.version }}")


model_reproduction()
