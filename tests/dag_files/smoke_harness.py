"""A two-task DAG that proves the test harness runs DAGs through Airflow and reads their XComs."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="harness_smoke", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def harness_smoke():
    @task
    def produce() -> dict:
        return {"rows": 3}

    @task
    def consume(value: dict) -> int:
        return value["rows"] * 2

    consume(produce())


harness_smoke()
