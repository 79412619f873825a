"""Every data zone on ``gs://`` through the Google provider's filesystem, against a Cloud Storage emulator server."""

from __future__ import annotations

import io
import json
from datetime import date

import pandas as pd
import pytest

from include.data_generator import generate_day
from tests.airflow_helpers import run_dag, task_states, task_xcom

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 2)


def test_gs_source_zones_and_partition_versions(gcs_server, gcs_bucket, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MLOPS__DATA_ROOT", f"gs://{gcs_bucket}/mlops")
    frame = generate_day(DAY, 250)
    frame.loc[:4, "amount"] = -1.0  # five rows break the contract: they go to quarantine
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    gcs_server.upload(gcs_bucket, f"exports/{DAY}/part-0.parquet", buffer.getvalue())
    conf = {"dataset": "tx_gs", "start": f"{DAY}", "end": f"{DAY}", "source_uri": f"gs://{gcs_bucket}/exports/{{ds}}/"}
    dag_run = run_dag("data_ingest_validate", conf=conf)
    assert task_states(dag_run) == {"ingest": "success", "validate": "success"}
    ingested = task_xcom(dag_run, "ingest")
    assert ingested["partitions"][0]["uri"] == f"gs://{gcs_bucket}/mlops/raw/tx_gs/dt={DAY}/data.parquet"
    names = gcs_server.object_names(gcs_bucket)
    assert {
        f"mlops/raw/tx_gs/dt={DAY}/data.parquet",
        f"mlops/validated/tx_gs/dt={DAY}/data.parquet",
        f"mlops/quarantine/tx_gs/dt={DAY}/data.parquet",
        f"mlops/reports/validation/tx_gs/dt={DAY}/report.json",
    } <= names
    assert not [name for name in names if name.endswith(".tmp")]
    valid = pd.read_parquet(io.BytesIO(gcs_server.download(gcs_bucket, f"mlops/validated/tx_gs/dt={DAY}/data.parquet")))
    quarantine = pd.read_parquet(
        io.BytesIO(gcs_server.download(gcs_bucket, f"mlops/quarantine/tx_gs/dt={DAY}/data.parquet"))
    )
    report = json.loads(gcs_server.download(gcs_bucket, f"mlops/reports/validation/tx_gs/dt={DAY}/report.json"))
    assert len(valid) == 245 and len(quarantine) == 5 and report["input_rows"] == 250
    assert report["valid_rows"] == 245 and report["invalid_rows"] == 5
    link = task_xcom(dag_run, "validate", key="_link_validation_report")
    assert link.startswith(f"https://console.cloud.google.com/storage/browser/_details/{gcs_bucket}/mlops/reports/")

    # Partition versions on gs://: content-addressed copies, a CURRENT pointer, retention deleting old objects.
    from mlops_provider.partitions import current_version, list_versions, read_partition, write_partition

    version = ingested["partitions"][0]["version"]
    assert {
        f"mlops/raw/tx_gs/dt={DAY}/_versions/{version}/data.parquet",
        f"mlops/raw/tx_gs/dt={DAY}/_versions/{version}/version.json",
        f"mlops/raw/tx_gs/dt={DAY}/_versions/CURRENT",
    } <= names
    raw_zone = f"gs://{gcs_bucket}/mlops/raw/tx_gs"
    assert current_version(raw_zone, DAY) == version
    newer = write_partition(b"PAR1 not really parquet", raw_zone, DAY, retain=2)
    assert current_version(raw_zone, DAY) == newer != version
    assert [v["version"] for v in list_versions(raw_zone, DAY)] == [newer, version]
    old = read_partition(raw_zone, DAY, version=version)
    assert old is not None and len(pd.read_parquet(io.BytesIO(old[0]))) == 250
    newest = write_partition(b"PAR1 other bytes", raw_zone, DAY, retain=1)
    versions = gcs_server.object_names(gcs_bucket, f"mlops/raw/tx_gs/dt={DAY}/_versions/")
    assert not [name for name in versions if f"/{version}/" in name or f"/{newer}/" in name]
    assert f"mlops/raw/tx_gs/dt={DAY}/_versions/{newest}/data.parquet" in versions
    assert gcs_server.download(gcs_bucket, f"mlops/raw/tx_gs/dt={DAY}/data.parquet") == b"PAR1 other bytes"


def test_local_training_reads_a_gs_training_set(gcs_server, gcs_bucket, mlflow_connection, fast_params_file, tmp_path):
    import uuid

    from tests.fixtures.training_snapshot import make_training_snapshot

    manifest = make_training_snapshot(tmp_path / "snapshot", rows=1500, seed=41, signal=2.0)
    prefix = "mlops/training_sets/gs_model/v1"
    gcs_server.upload(gcs_bucket, f"{prefix}/data.parquet", (tmp_path / "snapshot" / "data.parquet").read_bytes())
    manifest = {**manifest, "uri": f"gs://{gcs_bucket}/{prefix}/data.parquet"}
    gcs_server.upload(gcs_bucket, f"{prefix}/manifest.json", json.dumps(manifest).encode())
    name = f"gs_{uuid.uuid4().hex[:8]}"
    conf = {"model_name": name, "training_set": manifest, "params_file": fast_params_file}
    dag_run = run_dag("training_local", conf=conf)
    assert task_states(dag_run) == {"train": "success"}
    result = task_xcom(dag_run, "train")
    assert result["model_version"] == "1"
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_connection.url)
    run = client.get_run(client.get_model_version(name, "1").run_id)
    # The run's lineage names the gs:// training set it was trained on, and its hash.
    assert manifest["uri"] in json.dumps(run.data.tags) + json.dumps(run.data.params)
    assert manifest["hash"] in json.dumps(run.data.tags) + json.dumps(run.data.params)


def test_mlflow_artifact_store_on_gs(gcs_server, gcs_bucket, tmp_path):
    """An MLflow server whose artifact destination is gs:// (MLflow's GCS repository, google-cloud-storage)."""
    import os
    import sys
    from pathlib import Path

    from tests.loopback import free_port, serving

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
               "--artifacts-destination", f"gs://{gcs_bucket}/mlflow-artifacts", "--serve-artifacts",
               "--workers", "1"]  # fmt: skip
    with serving(command, health_url=f"{url}/health", log=tmp_path / "mlflow.log", env=env, cwd=tmp_path, timeout=240):
        from mlflow import MlflowClient

        client = MlflowClient(url)
        experiment = client.create_experiment("gs-artifacts")
        run = client.create_run(experiment)
        (tmp_path / "report.json").write_text(json.dumps({"auc": 0.91}))
        client.log_artifact(run.info.run_id, str(tmp_path / "report.json"), artifact_path="evaluation")
        names = gcs_server.object_names(gcs_bucket, "mlflow-artifacts/")
        assert [n for n in names if n.endswith(f"/{run.info.run_id}/artifacts/evaluation/report.json")]
        local = client.download_artifacts(run.info.run_id, "evaluation/report.json", str(tmp_path / "back"))
        assert json.loads(Path(local).read_text()) == {"auc": 0.91}
