"""The data and training pipeline on ``gs://``, against a Cloud Storage emulator server on loopback.

One run through the real operators (Airflow's ``dag.test()``): landing -> ingest -> validate (with quarantine)
-> Feast apply -> materialize (Feast reading its offline files from ``gs://``, online store SQLite) -> training
set on ``gs://`` -> local training registered in MLflow with its artifacts on ``gs://``. Every zone the run
writes is then read back from the emulator. The steps share one run because each needs the previous one's
output, and the run is what costs time.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from include.data_generator import generate_day
from tests.airflow_helpers import run_dag, task_states, task_xcom

pytestmark = pytest.mark.integration

DAYS = [date(2026, 3, 2) + timedelta(days=i) for i in range(3)]
ROWS_PER_DAY = 400
BROKEN_ROWS = 5  # rows of the first day that break the contract: they go to quarantine
DATASET = "transactions"  # the example's feature views aggregate this dataset


def test_pipeline_writes_and_reads_every_zone_on_gs(
    gcs_server, gcs_bucket, mlflow_connection, fast_params_file, monkeypatch, tmp_path
):
    # Feast's registry and online store (and nothing else) stay local, private to this test.
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path / "mlops"))
    monkeypatch.setenv("AIRFLOW__MLOPS__DATA_ROOT", f"gs://{gcs_bucket}/mlops")
    for n, day in enumerate(DAYS):
        frame = generate_day(day, ROWS_PER_DAY, seed=7)
        if n == 0:
            frame.loc[: BROKEN_ROWS - 1, "amount"] = -1.0
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        gcs_server.upload(gcs_bucket, f"mlops/landing/{DATASET}/dt={day}/part-0.parquet", buffer.getvalue())

    window = {"start": f"{DAYS[0]}", "end": f"{DAYS[-1]}"}
    ingested = run_dag("data_ingest_validate", conf={"dataset": DATASET, **window})
    assert task_states(ingested) == {"ingest": "success", "validate": "success"}
    features = run_dag("data_features", conf=window)
    assert set(task_states(features).values()) == {"success"}, task_states(features)
    manifest = task_xcom(features, "build_training_set")
    model_name = f"gs_{uuid.uuid4().hex[:8]}"
    artifact_root = _experiment_with_gs_artifacts(mlflow_connection.url, model_name, gcs_bucket)
    training = run_dag(
        "training_local", conf={"model_name": model_name, "training_set": manifest, "params_file": fast_params_file}
    )
    assert task_states(training) == {"train": "success"}

    names = gcs_server.object_names(gcs_bucket)
    assert not [name for name in names if name.endswith(".tmp")]
    zones = {name.split("/")[1] for name in names if name.startswith("mlops/")}
    assert zones == {"landing", "raw", "validated", "quarantine", "reports", "features", "checkpoints", "training_sets"}
    _source_zones_and_partition_versions(gcs_server, gcs_bucket, ingested, names)
    validated = _validated_events(gcs_server, gcs_bucket)
    _online_features_equal_the_source_aggregates(validated)
    _training_set_reads_back_from_gs(gcs_server, gcs_bucket, manifest, len(validated))
    _model_artifacts_on_gs(gcs_server, gcs_bucket, mlflow_connection.url, model_name, manifest, artifact_root)


def _source_zones_and_partition_versions(gcs_server, gcs_bucket, dag_run, names: set[str]) -> None:
    """Raw, validated, quarantine and report objects per day; versions, ``CURRENT`` and retention on ``gs://``."""
    first = DAYS[0]
    ingested = task_xcom(dag_run, "ingest")
    assert ingested["partitions"][0]["uri"] == f"gs://{gcs_bucket}/mlops/raw/{DATASET}/dt={first}/data.parquet"
    for day in DAYS:
        assert {
            f"mlops/raw/{DATASET}/dt={day}/data.parquet",
            f"mlops/validated/{DATASET}/dt={day}/data.parquet",
            f"mlops/quarantine/{DATASET}/dt={day}/data.parquet",  # empty on a clean day: valid + quarantined = input
            f"mlops/reports/validation/{DATASET}/dt={day}/report.json",
        } <= names
    quarantine = {
        day: pd.read_parquet(
            io.BytesIO(gcs_server.download(gcs_bucket, f"mlops/quarantine/{DATASET}/dt={day}/data.parquet"))
        )
        for day in DAYS
    }
    assert [len(frame) for frame in quarantine.values()] == [BROKEN_ROWS] + [0] * (len(DAYS) - 1)
    assert (quarantine[first]["amount"] == -1.0).all()
    report = json.loads(gcs_server.download(gcs_bucket, f"mlops/reports/validation/{DATASET}/dt={first}/report.json"))
    assert (report["input_rows"], report["invalid_rows"]) == (ROWS_PER_DAY, BROKEN_ROWS)
    link = task_xcom(dag_run, "validate", key="_link_validation_report")
    assert link.startswith(f"https://console.cloud.google.com/storage/browser/_details/{gcs_bucket}/mlops/reports/")

    from mlops_provider.partitions import current_version, list_versions, read_partition, write_partition

    version = ingested["partitions"][0]["version"]
    versions = f"mlops/raw/{DATASET}/dt={first}/_versions"
    assert {f"{versions}/{version}/data.parquet", f"{versions}/{version}/version.json", f"{versions}/CURRENT"} <= names
    raw_zone = f"gs://{gcs_bucket}/mlops/raw/{DATASET}"
    assert current_version(raw_zone, first) == version
    newer = write_partition(b"PAR1 not really parquet", raw_zone, first, retain=2)
    assert current_version(raw_zone, first) == newer != version
    assert [v["version"] for v in list_versions(raw_zone, first)] == [newer, version]
    old = read_partition(raw_zone, first, version=version)
    assert old is not None and len(pd.read_parquet(io.BytesIO(old[0]))) == ROWS_PER_DAY
    newest = write_partition(b"PAR1 other bytes", raw_zone, first, retain=1)
    kept = gcs_server.object_names(gcs_bucket, f"{versions}/")
    assert not [name for name in kept if f"/{version}/" in name or f"/{newer}/" in name]
    assert f"{versions}/{newest}/data.parquet" in kept
    assert gcs_server.download(gcs_bucket, f"mlops/raw/{DATASET}/dt={first}/data.parquet") == b"PAR1 other bytes"


def _validated_events(gcs_server, gcs_bucket) -> pd.DataFrame:
    frames = [
        pd.read_parquet(io.BytesIO(gcs_server.download(gcs_bucket, f"mlops/validated/{DATASET}/dt={day}/data.parquet")))
        for day in DAYS
    ]
    events = pd.concat(frames, ignore_index=True)
    assert len(events) == ROWS_PER_DAY * len(DAYS) - BROKEN_ROWS
    return events


def _online_features_equal_the_source_aggregates(events: pd.DataFrame) -> None:
    """Materialization read the aggregate files from ``gs://``: the online values are the events' aggregates."""
    from mlops_provider.hooks.feast import FeastHook

    store = FeastHook().get_feature_store()
    view = store.get_feature_view("customer_stats")
    assert view.batch_source.path.startswith("gs://")
    refs = ["customer_stats:customer_txn_count_7d", "customer_stats:customer_amount_mean_7d"]
    customers = [int(c) for c in events["customer_id"].value_counts().index[:5]]
    served = store.get_online_features(features=refs, entity_rows=[{"customer_id": c} for c in customers]).to_dict()
    # The online row is the latest change point up to the end of the materialized window.
    end = pd.Timestamp(datetime.combine(DAYS[-1] + timedelta(days=1), datetime.min.time()), tz="UTC")
    for customer, count, mean in zip(
        customers, served["customer_txn_count_7d"], served["customer_amount_mean_7d"], strict=True
    ):
        mine = events[(events["customer_id"] == customer) & (events["event_timestamp"] >= end - timedelta(days=7))]
        assert count == len(mine) > 0, customer
        assert mean == pytest.approx(mine["amount"].mean(), abs=1e-4), customer


def _training_set_reads_back_from_gs(gcs_server, gcs_bucket, manifest: dict, events: int) -> None:
    prefix = f"mlops/training_sets/{DATASET}/{manifest['hash']}"
    assert manifest["uri"] == f"gs://{gcs_bucket}/{prefix}/data.parquet"
    payload = gcs_server.download(gcs_bucket, f"{prefix}/data.parquet")
    assert hashlib.sha256(payload).hexdigest() == manifest["sha256"]
    rows = pd.read_parquet(io.BytesIO(payload))
    assert len(rows) == manifest["rows"] == events  # every validated event is a label row
    assert set(manifest["feature_columns"]) <= set(rows.columns)
    assert rows["customer_txn_count_7d"].notna().all() and rows["customer_txn_count_7d"].max() > 0
    assert json.loads(gcs_server.download(gcs_bucket, f"{prefix}/manifest.json")) == manifest


def _experiment_with_gs_artifacts(tracking_url: str, model_name: str, gcs_bucket: str) -> str:
    """Create the model's experiment with its artifacts on ``gs://``, as a server with
    ``--default-artifact-root gs://...`` would: the trainer then writes them to Cloud Storage itself."""
    from mlflow import MlflowClient

    artifact_root = f"gs://{gcs_bucket}/mlflow-artifacts/{model_name}"
    MlflowClient(tracking_url).create_experiment(model_name, artifact_location=artifact_root)
    return artifact_root


def _model_artifacts_on_gs(gcs_server, gcs_bucket, tracking_url, model_name, manifest, artifact_root) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_url)
    version = client.get_model_version(model_name, "1")
    run = client.get_run(version.run_id)
    assert run.info.artifact_uri.startswith(f"{artifact_root}/")
    # The run's lineage names the gs:// training set it was trained on, and its hash.
    lineage = json.dumps(run.data.tags) + json.dumps(run.data.params)
    assert manifest["uri"] in lineage and manifest["hash"] in lineage
    # The registered version's files are on gs://, and the bundle loads the model from there.
    from mlops_provider.hooks.mlflow import MlflowHook

    hook = MlflowHook()
    model_uri = hook.version_download_uri(model_name, "1")
    assert model_uri.startswith(f"{artifact_root}/")
    model_prefix = model_uri.removeprefix(f"gs://{gcs_bucket}/").rstrip("/")
    assert f"{model_prefix}/MLmodel" in gcs_server.object_names(gcs_bucket, model_prefix)
    model = hook.load_xgboost_model(model_name, "1")
    assert model.num_boosted_rounds() > 0
