"""The whole local pipeline through Airflow, as `make demo` runs it: a real model trained, registered, served, monitored."""

from __future__ import annotations

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


def test_demo_trains_serves_and_monitors_then_reruns_idempotently(demo_env, capsys):
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
    _audit_of_the_first_run(first, capsys)

    second = main(["--rows-per-day", "800", "--out", str(out), "--inject-drift"])
    assert second["model_version"] == "2", "a rerun trains and registers one new version, not duplicates"
    assert second["drift_detected"] is True, "injected covariate drift is detected"
    assert 0.0 <= second["sample_prediction"] <= 1.0
    from mlops_provider.audit import read_audit

    kinds = {(e["kind"], e["outcome"], e["subject"]) for e in read_audit(MODEL_NAME)}
    assert ("retraining_trigger", "drift_detected", None) in kinds, kinds
    assert ("gate_decision", "promote", "2") in kinds, kinds

    # Every demo day is one raw partition holding exactly that day's landed rows: reruns replaced, never appended.
    from datetime import timedelta

    import pyarrow.parquet as pq

    from include.demo import MONITOR_DAYS, TRAIN_DAYS, TRAIN_END
    from include.fraud_example import DATASET

    first_day = TRAIN_END - timedelta(days=TRAIN_DAYS - 1)
    expected_days = {f"dt={first_day + timedelta(days=n)}" for n in range(TRAIN_DAYS + MONITOR_DAYS)}
    raw = storage_path(get_settings().zone_uri("raw", DATASET))
    landing = storage_path(get_settings().zone_uri("landing", DATASET))
    assert {p.name for p in raw.iterdir()} == expected_days
    for day in sorted(expected_days):
        assert [f.name for f in (raw / day).iterdir()] == ["data.parquet"], "reruns replace partitions"
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
    assert main(["no-such-request", "--model", MODEL_NAME]) == 2


def _audit_of_the_first_run(summary: dict, capsys) -> None:
    """The audit log holds the gate decision and the promotion of the served version, with links; JSONL exports."""
    from include.audit import main
    from include.fraud_example import MODEL_NAME

    capsys.readouterr()
    assert main(["export", "--model", MODEL_NAME]) == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_kind = {e["kind"]: e for e in entries}
    assert [e["kind"] for e in entries].count("gate_decision") == 1, entries
    gate, promotion = by_kind["gate_decision"], by_kind["promotion"]
    assert gate["outcome"] == "promote" and gate["subject"] == summary["model_version"]
    assert gate["details"]["candidate_metrics"]["roc_auc"] > 0 and "roc_auc" in gate["reason"]
    assert gate["actor"]["dag_id"] == "ml_training_pipeline" and gate["actor"]["task_id"]
    assert gate["links"]["airflow_task"].endswith(f"/tasks/{gate['actor']['task_id']}")
    assert promotion["outcome"] == "promoted" and promotion["subject"] == summary["champion_version"]
    assert promotion["links"]["endpoint"] == f"{summary['endpoint_url']}/v2/models/{MODEL_NAME}"
    assert promotion["at"] > gate["at"], "entries export oldest first"
    assert entries.index(promotion) > entries.index(gate)
    assert by_kind["retraining_decision"]["outcome"] == "proceed"
