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
    _delayed_labels_close_the_loop(first, demo_env)
    _reproduce_the_served_version(first)

    second = main(["--rows-per-day", "800", "--out", str(out), "--inject-drift"])
    assert second["model_version"] == "2", "a rerun trains and registers one new version, not duplicates"
    assert second["drift_detected"] is True, "injected covariate drift is detected"
    assert 0.0 <= second["sample_prediction"] <= 1.0
    from mlops_provider.audit import read_audit

    kinds = {(e["kind"], e["outcome"], e["subject"]) for e in read_audit(MODEL_NAME)}
    assert ("retraining_trigger", "drift_detected", None) in kinds, kinds
    assert ("gate_decision", "promote", "2") in kinds, kinds

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


def _delayed_labels_close_the_loop(summary: dict, out_dir) -> None:
    """Labels of the served requests arrive days later: wrong ones drop the live ROC AUC below the champion's
    holdout score and request retraining through ``drift.fraud_detector``; corrected ones request nothing."""
    from datetime import UTC, date, datetime, timedelta

    from include.airflow_runner import asset_triggered_runs, run_dag, scheduler_pass, task_states, task_xcom
    from include.demo import DAG_FOLDERS
    from include.fraud_example import DATASET, LABEL_COLUMN, MODEL_NAME
    from mlops_provider.drift.check import round_score
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.names import zone_uri
    from mlops_provider.partitions import read_window
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import write_parquet_atomic
    from mlops_provider.ui.data import collect_live_performance

    settings = get_settings()
    today = datetime.now(UTC).date()
    served = read_window(zone_uri(settings.data_root, "predictions", MODEL_NAME), today - timedelta(days=1), today)
    log = served.frame
    assert len(log) >= 10 and set(log["model_version"]) == {summary["model_version"]}, log["model_version"].unique()
    assert not log.duplicated(["request_id", "request_row"]).any(), "every logged row has its own (id, row)"
    high = log["prediction"] > log["prediction"].median()
    labels_zone = settings.zone_uri("labels", DATASET)
    champion = MlflowHook().get_version_by_alias(MODEL_NAME, "champion")
    holdout_auc = MlflowHook().run_metrics(champion.run_id)["roc_auc"]

    def feedback(labels, arrived: date):
        frame = log[["request_id", "request_row"]].assign(**{LABEL_COLUMN: labels.astype(int).to_numpy()})
        write_parquet_atomic(frame, f"{labels_zone}/dt={arrived}/labels.parquet")
        conf = {"as_of": arrived.isoformat(), "min_labeled_rows": len(log), "max_performance_drop": 0.05}
        dag_run = run_dag("label_feedback", DAG_FOLDERS, conf=conf)
        return dag_run, task_states(dag_run), task_xcom(dag_run, "label_feedback")

    # Two days after the predictions, labels that contradict every score: the live ROC AUC falls to 0.
    arrived = max(date.fromisoformat(d) for d in served.days) + timedelta(days=2)
    dag_run, states, verdict = feedback(~high, arrived)
    assert states == {
        name: "success" for name in ("label_feedback", "drift_exceeds_policy", "emit_drift_event", "alert_drift")
    }
    decision = verdict["live_performance"]
    assert decision["status"] == "exceeds" and decision["live"] == 0.0 and decision["labeled_rows"] == len(log)
    assert decision["reference"] == round_score(holdout_auc), "the reference is the champion run's holdout roc_auc"
    assert verdict["counts"]["unlabeled"] == 0 and verdict["counts"]["unmatched_labels"] == 0
    event = _asset_event_of(dag_run.run_id, f"drift.{MODEL_NAME}")
    assert event is not None and event["reasons"] == verdict["reasons"]
    assert event["reasons"][0].startswith(f"live roc_auc of version {champion.version} dropped by")
    # Runs the demo's scheduler pass queued (daily data also schedules training) wait here: no executor runs them.
    # With max_active_runs=1 the drift event waits for them, so they end first, as an executor would end them.
    _end_queued_runs("ml_training_pipeline")
    runs_before = asset_triggered_runs("ml_training_pipeline")
    scheduler_pass()
    queued = [names for run, names in asset_triggered_runs("ml_training_pipeline") if (run, names) not in runs_before]
    assert any(f"drift.{MODEL_NAME}" in names for names in queued), queued
    live = collect_live_performance(settings.data_root, MODEL_NAME)
    assert {(r["day"], r["model_version"]) for r in live} == {(d, summary["model_version"]) for d in served.days}
    assert sum(r["labeled_rows"] for r in live) == len(log) and all(r["value"] == 0.0 for r in live), live

    # A day later corrections arrive through `make label-feedback SIMULATE=right` (the last label of a request
    # wins): live ROC AUC 1.0, within the policy, no event.
    from include.label_feedback import main as label_feedback

    out = str(out_dir / "label_feedback.log")
    verdict = label_feedback(["--as-of", f"{arrived + timedelta(days=1)}", "--simulate", "right", "--out", out])
    assert verdict["live_performance"]["status"] == "within" and verdict["live_performance"]["live"] == 1.0
    assert verdict["counts"]["duplicate_labels"] == len(log) and verdict["counts"]["labeled"] == len(log)
    assert _asset_event_of(verdict["run_id"], f"drift.{MODEL_NAME}") is None
    assert all(r["value"] == 1.0 for r in collect_live_performance(settings.data_root, MODEL_NAME))


def _end_queued_runs(dag_id: str) -> None:
    """Mark ``dag_id``'s queued and running runs successful (what an executor would have made of them)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        session.query(DagRun).filter(
            DagRun.dag_id == dag_id, DagRun.state.in_((DagRunState.QUEUED, DagRunState.RUNNING))
        ).update({DagRun.state: DagRunState.SUCCESS}, synchronize_session=False)


def _asset_event_of(run_id: str, asset_name: str) -> dict | None:
    """The ``extra`` of the event of ``asset_name`` that the DAG run ``run_id`` emitted (None: it emitted none)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        event = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == asset_name, AssetEvent.source_run_id == run_id)
            .one_or_none()
        )
        return None if event is None else dict(event.extra or {})


def _reproduce_the_served_version(summary: dict) -> None:
    """``make reproduce``: the served version rebuilt from its recorded partition versions after the data changed."""
    import pandas as pd

    from include.airflow_runner import run_dag, task_states, task_xcom
    from include.demo import DAG_FOLDERS
    from include.fraud_example import MODEL_NAME
    from include.reproduce import main
    from mlops_provider.exceptions import PartitionVersionMissingError
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.names import zone_uri
    from mlops_provider.operators.reproduction import reproduce_model_version
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

    # Through Airflow: the model_reproduction DAG a user triggers from the UI.
    dag_run = run_dag("model_reproduction", DAG_FOLDERS, conf={"model_name": MODEL_NAME, "version": version})
    assert task_states(dag_run) == {"reproduce": "success"}
    report = task_xcom(dag_run, "reproduce")
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
