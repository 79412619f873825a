"""The whole local pipeline through Airflow, as `make demo` runs it: a real model trained, registered, served, monitored."""

from __future__ import annotations

import io
import json

import pytest

from tests.loopback import free_port

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def demo_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_SERVING_PORT", str(free_port()))
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path / "mlops"))
    yield tmp_path
    from mlops_provider.hooks.local_serving import LocalServingHook

    LocalServingHook().stop_all()


def test_demo_trains_serves_and_monitors_then_reruns_idempotently(demo_env):
    from include.demo import main
    from include.fraud_example import MODEL_NAME
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import storage_path

    out = demo_env / "summary.json"
    first = main(["--rows-per-day", "800", "--out", str(out)])

    assert json.loads(out.read_text()) == first
    assert set(first) >= {
        "model_name",
        "model_version",
        "champion_version",
        "endpoint_url",
        "sample_prediction",
        "drift_detected",
        "reports",
    }
    assert first["model_name"] == MODEL_NAME
    assert first["champion_version"] == first["model_version"] == "1", "the first model ever is promoted and served"
    assert first["endpoint_url"].endswith(f":{get_settings().local_serving_port}")
    assert 0.0 <= first["sample_prediction"] <= 1.0
    assert first["drift_detected"] is False, "the monitored days come from the training distribution"
    assert storage_path(first["reports"]["drift_html"]).exists()
    _trace_the_sample_prediction(first)
    _reproduce_the_served_version(first)

    second = main(["--rows-per-day", "800", "--out", str(out), "--inject-drift"])
    assert second["model_version"] == "2", "a rerun trains and registers one new version, not duplicates"
    assert second["drift_detected"] is True, "injected covariate drift is detected"
    assert 0.0 <= second["sample_prediction"] <= 1.0

    # Every demo day is one raw partition holding exactly that day's landed rows: reruns replaced, never appended.
    from datetime import date, timedelta

    import pyarrow.parquet as pq

    from include.demo import MONITOR_DAYS, TRAIN_DAYS, TRAIN_END
    from include.fraud_example import DATASET

    first_day = TRAIN_END - timedelta(days=TRAIN_DAYS - 1)
    expected_days = {f"dt={first_day + timedelta(days=n)}" for n in range(TRAIN_DAYS + MONITOR_DAYS)}
    raw = storage_path(get_settings().zone_uri("raw", DATASET))
    landing = storage_path(get_settings().zone_uri("landing", DATASET))
    assert {p.name for p in raw.iterdir()} == expected_days
    from mlops_provider.partitions import content_version, current_version

    for day in sorted(expected_days):
        assert sorted(f.name for f in (raw / day).iterdir()) == ["_versions", "data.parquet"], "reruns replace"
        pointer = current_version(raw.as_uri(), date.fromisoformat(day[3:]))
        assert pointer == content_version((raw / day / "data.parquet").read_bytes()), "CURRENT names the content"
        landed = sum(pq.ParquetFile(str(f)).metadata.num_rows for f in (landing / day).iterdir())
        ingested = pq.ParquetFile(str(raw / day / "data.parquet")).metadata.num_rows
        assert ingested == landed > 0, f"{day}: {ingested} raw rows for {landed} landed rows"
    assert (out.parent / "airflow.log").stat().st_size > 0, "Airflow's own logs go to the file the demo names"


def _trace_the_sample_prediction(summary: dict) -> None:
    """``include.trace``: the demo's request -> its version, run, training set and validation reports."""
    import time

    from include.demo import TRAIN_DAYS
    from include.fraud_example import MODEL_NAME
    from include.trace import TraceError, main, trace

    deadline = time.time() + 30  # the predictor writes its log every few seconds
    while True:
        try:
            lineage = trace(summary["sample_request_id"], MODEL_NAME)
            break
        except TraceError:
            if time.time() > deadline:
                raise
            time.sleep(1)
    request = lineage["request"]
    assert request["model_name"] == MODEL_NAME and request["rows"] == 1 and request["latency_ms"] > 0
    assert request["predictions"][0] == pytest.approx(summary["sample_prediction"], abs=1e-5)
    assert lineage["model_version"]["version"] == summary["model_version"]
    assert "champion" in lineage["model_version"]["aliases"]
    assert lineage["run"]["airflow"]["airflow.dag_id"] == "ml_training_pipeline"
    training_set = lineage["training_set"]
    assert len(training_set["hash"]) >= 12 and training_set["rows"] > 0
    reports = lineage["validation_reports"]
    assert len(reports) == TRAIN_DAYS and all(r["published"] for r in reports), reports
    # The validated partition versions the training set read (its window and the aggregates' look-back).
    versions = training_set["partition_versions"]
    assert len(versions) >= TRAIN_DAYS and all(v["exists"] and v["current"] for v in versions), versions
    assert main(["no-such-request", "--model", MODEL_NAME]) == 2


def _reproduce_the_served_version(summary: dict) -> None:
    """``make reproduce``: the served version rebuilt from its recorded partition versions after the data changed."""
    import pandas as pd

    from include.fraud_example import MODEL_NAME
    from include.reproduce import main
    from mlops_provider.exceptions import PartitionVersionMissingError
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.names import zone_uri
    from mlops_provider.operators.reproduction import ModelReproductionOperator, reproduce_model_version
    from mlops_provider.partitions import parse_partition_key, read_partition, write_partition
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import parquet_bytes

    version = summary["model_version"]
    hook = MlflowHook()
    _, manifest = hook.training_set_of_run(hook.get_model_version(MODEL_NAME, version).run_id)
    key = max(manifest["partition_versions"])  # the window's last day
    recorded = manifest["partition_versions"][key]
    zone, dataset, day = parse_partition_key(key)
    partition = zone_uri(get_settings().data_root, zone, dataset)
    original, _ = read_partition(partition, day)
    frame = pd.read_parquet(io.BytesIO(original))
    changed = frame.assign(amount=frame["amount"] * 3).iloc[: len(frame) // 2]
    assert write_partition(parquet_bytes(changed), partition, day) != recorded, "the current data is different now"

    report = ModelReproductionOperator(task_id="reproduce", model_name=MODEL_NAME, version=version).execute({})
    assert report["rebuilt_training_set_hash"] == report["training_set_hash"] == manifest["hash"]
    assert report["partition_versions"][key] == recorded
    assert report["reproduced_model_name"] == f"{MODEL_NAME}-reproduced" and report["sample_rows"] > 100
    assert report["identical"] is True and report["max_abs_diff"] == 0.0, report

    # Retention deletes the recorded version (only the current, changed content is kept): a clear failure.
    write_partition(parquet_bytes(changed.iloc[:10]), partition, day, retain=1)
    with pytest.raises(PartitionVersionMissingError) as missing:
        reproduce_model_version(MODEL_NAME, version)
    for expected in (key, recorded, "partition_versions_retained"):
        assert expected in str(missing.value)
    assert main(["--model", MODEL_NAME, "--version", version]) == 2
    write_partition(original, partition, day)  # the original data back for the rerun below
