"""SourceDataSensor (poke and deferrable) through Airflow, and its trigger on its own."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from include.data_generator import generate_day
from mlops_provider.triggers.ingestion import SourceDataTrigger
from tests.airflow_helpers import run_dag, task_states

pytestmark = pytest.mark.integration

DAY = date(2026, 4, 1)


def landing(dataset: str) -> Path:
    from mlops_provider.settings import get_settings

    return Path(get_settings().data_root.removeprefix("file://")) / "landing" / dataset / f"dt={DAY}"


def failure(dag_run, task_id: str) -> dict:
    """The exception a failed task of this run raised (written by ``record_failure`` in the test DAG file)."""
    path = Path(os.environ["AIRFLOW_HOME"]) / "test-failures" / "data_source_sensor" / f"{task_id}.json"
    record = json.loads(path.read_text())
    assert record["run_id"] == dag_run.run_id, "no failure recorded for this run"
    return record


def test_sensor_passes_when_data_is_there():
    folder = landing("tx_sensor_present")
    folder.mkdir(parents=True)
    generate_day(DAY, 10).to_parquet(folder / "part-0.parquet")
    dag_run = run_dag("data_source_sensor", conf={"dataset": "tx_sensor_present", "day": f"{DAY}"})
    assert task_states(dag_run) == {"wait_poke": "success", "wait_deferred": "success"}


def test_sensor_times_out_when_data_is_missing():
    dag_run = run_dag("data_source_sensor", conf={"dataset": "tx_sensor_absent", "day": f"{DAY}"})
    states = task_states(dag_run)
    assert states["wait_poke"] == "failed"
    assert states["wait_deferred"] == "failed"
    # Both modes fail for the same reason, and say which data is missing where.
    for task_id in ("wait_poke", "wait_deferred"):
        record = failure(dag_run, task_id)
        assert record["type"] == "AirflowSensorTimeout", record
        assert record["message"].startswith("No source data for tx_sensor_absent at "), record
        assert f"landing/tx_sensor_absent/dt={DAY}" in record["message"], record


def test_trigger_serializes_every_argument():
    trigger = SourceDataTrigger(uri="s3://b/landing/x", conn_id="aws_x", poke_interval=5.0, deadline=123.0)
    path, kwargs = trigger.serialize()
    assert path == "mlops_provider.triggers.ingestion.SourceDataTrigger"
    assert SourceDataTrigger(**kwargs).serialize() == (path, kwargs)


def test_trigger_fires_once_when_a_file_lands(tmp_path):
    folder = tmp_path / "dt=2026-04-01"
    trigger = SourceDataTrigger(uri=f"file://{folder}", poke_interval=0.05, deadline=time.time() + 10)

    def land_later():
        time.sleep(0.3)
        folder.mkdir()
        (folder / "part-0.csv").write_text("a,b\n1,2\n")

    threading.Thread(target=land_later).start()

    async def first_event():
        async for event in trigger.run():
            return event.payload

    started = time.monotonic()
    payload = asyncio.run(first_event())
    assert payload == {"status": "success", "uri": f"file://{folder}"} and time.monotonic() - started >= 0.3


def test_trigger_reports_timeout(tmp_path):
    trigger = SourceDataTrigger(uri=(tmp_path / "never").as_uri(), poke_interval=0.05, deadline=time.time() + 0.2)

    async def first_event():
        async for event in trigger.run():
            return event.payload

    assert asyncio.run(first_event())["status"] == "timeout"
