"""Ingestion and validation through Airflow: the happy path, idempotency, S3, and every bad-input case.

Each test works on its own dataset name, so partitions never collide. Invariant checked everywhere a
partition was validated: valid rows + quarantined rows == ingested rows.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from include.data_generator import generate_day
from tests.airflow_helpers import run_dag, task_states, task_xcom

pytestmark = pytest.mark.integration

DAG_ID = "data_ingest_validate"
DAY = date(2026, 3, 2)


def data_root() -> Path:
    from mlops_provider.settings import get_settings

    return Path(get_settings().data_root.removeprefix("file://"))


def zone(name: str, dataset: str, day: date = DAY, filename: str = "data.parquet") -> Path:
    return data_root() / name / dataset / f"dt={day:%Y-%m-%d}" / filename


def land(dataset: str, df: pd.DataFrame, day: date = DAY, fmt: str = "parquet", sep: str = ",") -> Path:
    target = data_root() / "landing" / dataset / f"dt={day:%Y-%m-%d}" / f"part-0.{fmt}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        df.to_parquet(target, index=False)
    else:
        df.to_csv(target, index=False, sep=sep)
    return target


def run(dataset: str, start: date = DAY, end: date | None = None, **conf):
    params = {"dataset": dataset, "start": f"{start}", "end": f"{end or start}", **conf}
    dag_run = run_dag(DAG_ID, conf=params)
    return dag_run, task_states(dag_run)


def failure(dag_run, task_id: str) -> dict:
    path = Path(os.environ["AIRFLOW_HOME"]) / "test-failures" / DAG_ID / f"{task_id}.json"
    record = json.loads(path.read_text())
    assert record["run_id"] == dag_run.run_id, "no failure recorded for this run"
    return record


def assert_nothing_lost(dataset: str, day: date = DAY) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = pd.read_parquet(zone("raw", dataset, day))
    report = json.loads(zone("reports/validation", dataset, day, "report.json").read_text())
    # A failed partition publishes nothing: its validated file must not exist (I3).
    assert zone("validated", dataset, day).exists() == report["published"]
    valid = pd.read_parquet(zone("validated", dataset, day)) if report["published"] else raw.iloc[0:0]
    quarantine = pd.read_parquet(zone("quarantine", dataset, day))
    assert len(valid) + len(quarantine) == len(raw)
    # Every raw row is in exactly one zone: the ids of both zones together are the raw ids, each as often.
    ids = Counter(map(str, valid["transaction_id"])) + Counter(map(str, quarantine["transaction_id"]))
    assert ids == Counter(map(str, raw["transaction_id"]))
    assert valid["transaction_id"].is_unique  # the contract declares the id unique
    assert report["valid_rows"] == len(valid) and report["invalid_rows"] == len(quarantine)
    assert report["input_rows"] == len(raw)
    if len(quarantine):
        assert quarantine["_failed_checks"].str.len().gt(0).all()
    return valid, quarantine


def test_clean_partitions_flow_through_with_row_counts():
    dataset = "tx_clean"
    for offset in range(2):
        land(dataset, generate_day(DAY + timedelta(days=offset), 300), day=DAY + timedelta(days=offset))
    dag_run, states = run(dataset, DAY, DAY + timedelta(days=1))
    assert states == {"ingest": "success", "validate": "success"}
    ingested = task_xcom(dag_run, "ingest")
    assert ingested["rows"] == 600 and [p["rows"] for p in ingested["partitions"]] == [300, 300]
    validated = task_xcom(dag_run, "validate")
    assert validated["valid_rows"] == 600 and validated["invalid_rows"] == 0
    assert validated["partitions"][0]["report_uri"].endswith(f"dt={DAY}/report.json")
    for offset in range(2):
        valid, quarantine = assert_nothing_lost(dataset, DAY + timedelta(days=offset))
        assert len(quarantine) == 0
        assert str(valid["event_timestamp"].dtype).startswith("datetime64") and valid["amount"].dtype == "float64"
    link = task_xcom(dag_run, "validate", key="_link_validation_report")
    assert link.startswith("file://") and link.endswith("report.json")


def test_asset_events_carry_row_counts():
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    dataset = "tx_events"
    land(dataset, generate_day(DAY, 120))
    dag_run, states = run(dataset)
    assert states["validate"] == "success"
    with create_session() as session:
        events = session.query(AssetEvent).filter_by(source_run_id=dag_run.run_id).all()
        extras = {e.source_task_id: e.extra for e in events}
    assert extras["ingest"]["rows"] == 120 and extras["ingest"]["partitions"] == [{"date": f"{DAY}", "rows": 120}]
    assert extras["validate"]["valid_rows"] == 120 and extras["validate"]["zone"] == "validated"


def test_reingest_is_idempotent_and_atomic():
    dataset = "tx_idempotent"
    land(dataset, generate_day(DAY, 200))
    first, _ = run(dataset)
    first_result = task_xcom(first, "validate")
    raw_bytes = zone("raw", dataset).read_bytes()
    validated_bytes = zone("validated", dataset).read_bytes()
    second, states = run(dataset)
    assert states == {"ingest": "success", "validate": "success"}
    assert zone("raw", dataset).read_bytes() == raw_bytes
    assert zone("validated", dataset).read_bytes() == validated_bytes
    assert sorted(p.name for p in zone("raw", dataset).parent.iterdir()) == ["_versions", "data.parquet"]
    assert first_result == task_xcom(second, "validate")
    assert first_result["valid_rows"] == 200
    from mlops_provider.partitions import content_version, current_version, list_versions, read_partition
    from mlops_provider.settings import get_settings

    def versioned(name: str) -> tuple[str, list[str]]:
        uri = f"{get_settings().data_root}/{name}/{dataset}"
        return current_version(uri, DAY), [v["version"] for v in list_versions(uri, DAY)]

    # The same content re-ingested and re-validated is the same version: one version per zone, no new copy.
    raw_version = content_version(raw_bytes)
    assert versioned("raw") == (raw_version, [raw_version])
    assert versioned("validated") == (content_version(validated_bytes), [content_version(validated_bytes)])
    assert first_result["partitions"][0]["versions"]["validated"] == content_version(validated_bytes)
    assert len(versioned("quarantine")[1]) == 1
    # A changed source replaces the current partition whole and keeps the previous content as a version.
    land(dataset, generate_day(DAY, 150))
    run(dataset)
    assert len(pd.read_parquet(zone("raw", dataset))) == 150
    assert len(pd.read_parquet(zone("validated", dataset))) == 150
    current, versions = versioned("raw")
    assert current == content_version(zone("raw", dataset).read_bytes()) and versions == [current, raw_version]
    old = read_partition(f"{get_settings().data_root}/raw/{dataset}", DAY, version=raw_version)
    assert old is not None and old[0] == raw_bytes
    assert len(versioned("validated")[1]) == 2


def test_bad_rows_are_quarantined_with_reasons():
    dataset = "tx_bad_rows"
    land(dataset, generate_day(DAY, 1000, bad_row_share=0.03))
    dag_run, states = run(dataset)
    assert states == {"ingest": "success", "validate": "success"}
    valid, quarantine = assert_nothing_lost(dataset)
    checks = set("; ".join(quarantine["_failed_checks"]).split("; "))
    assert {
        "customer_id:not_null",
        "merchant_category:not_null",
        "amount:type",
        "amount:min",
        "merchant_category:allowed",
        "transaction_id:unique",
        "event_timestamp:type",
    } <= checks
    assert valid["transaction_id"].is_unique and (valid["amount"] >= 0).all()
    # Quarantine keeps the original values: the unparseable ones are still there to inspect.
    assert quarantine["amount"].astype(str).str.contains("EUR").any()


def test_csv_source_is_ingested():
    dataset = "tx_csv"
    land(dataset, generate_day(DAY, 150), fmt="csv")
    dag_run, states = run(dataset)
    assert states == {"ingest": "success", "validate": "success"}
    assert task_xcom(dag_run, "validate")["valid_rows"] == 150


def test_missing_partition_fails_with_actionable_message():
    dag_run, states = run("tx_missing")
    assert states["ingest"] == "failed" and states["validate"] == "upstream_failed"
    record = failure(dag_run, "ingest")
    assert record["type"] == "SourceDataMissingError"
    assert f"dt={DAY}" in record["message"] and "does not exist" in record["message"]
    assert not zone("raw", "tx_missing").exists()


def test_empty_partition_fails_and_writes_nothing():
    dataset = "tx_empty"
    land(dataset, generate_day(DAY, 10).iloc[0:0])
    dag_run, states = run(dataset)
    assert states["ingest"] == "failed"
    record = failure(dag_run, "ingest")
    assert record["type"] == "SourceDataMissingError" and "0 rows" in record["message"]
    assert "allow_empty" in record["message"]
    assert not zone("raw", dataset).exists()
    # A partition folder without data files is reported as empty too.
    folder = data_root() / "landing" / "tx_empty_folder" / f"dt={DAY}"
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").write_text("")
    dag_run, states = run("tx_empty_folder")
    assert "is empty" in failure(dag_run, "ingest")["message"]


def test_corrupt_parquet_fails_and_keeps_previous_raw():
    dataset = "tx_corrupt"
    source = land(dataset, generate_day(DAY, 100))
    run(dataset)
    before = zone("raw", dataset).read_bytes()
    source.write_bytes(b"PAR1 this is not parquet" + os.urandom(64))
    dag_run, states = run(dataset)
    assert states["ingest"] == "failed"
    record = failure(dag_run, "ingest")
    assert record["type"] == "SourceDataFormatError" and "not a readable Parquet file" in record["message"]
    assert zone("raw", dataset).read_bytes() == before


def test_csv_with_wrong_delimiter_names_the_delimiter():
    dataset = "tx_semicolon"
    land(dataset, generate_day(DAY, 50), fmt="csv", sep=";")
    dag_run, states = run(dataset)
    assert states["ingest"] == "failed"
    record = failure(dag_run, "ingest")
    assert record["type"] == "SourceDataFormatError" and "csv_delimiter=';'" in record["message"]
    # The suggested setting works.
    dag_run, states = run(dataset, csv_delimiter=";")
    assert states == {"ingest": "success", "validate": "success"}


@pytest.mark.parametrize(
    ("case", "mutate", "expected"),
    [
        ("missing_column", lambda df: df.drop(columns=["country"]), "missing columns ['country']"),
        ("extra_column", lambda df: df.assign(device_id="d-1"), "undeclared columns ['device_id']"),
        (
            "wrong_dtype",
            lambda df: df.assign(customer_id="cust-" + df["customer_id"].astype(str)),
            "'customer_id' of transactions cannot be read as int64",
        ),
        ("renamed_column", lambda df: df.rename(columns={"amount": "amt"}), "missing columns ['amount']"),
    ],
)
def test_schema_breaks_fail_before_writing(case, mutate, expected):
    dataset = f"tx_schema_{case}"
    land(dataset, mutate(generate_day(DAY, 80)))
    dag_run, states = run(dataset)
    assert states == {"ingest": "success", "validate": "failed"}
    record = failure(dag_run, "validate")
    assert record["type"] == "SchemaMismatchError"
    assert expected in record["message"] and "Nothing was written" in record["message"]
    assert record["message"].startswith(f"{dataset} dt={DAY} (")
    for name in ("validated", "quarantine"):
        assert not zone(name, dataset).exists()
    assert not zone("reports/validation", dataset, filename="report.json").exists()


def test_all_null_column_quarantines_the_partition():
    dataset = "tx_all_null"
    land(dataset, generate_day(DAY, 100).assign(country=None))
    dag_run, states = run(dataset)
    assert states["validate"] == "failed"
    record = failure(dag_run, "validate")
    assert record["type"] == "DataValidationError"
    assert "country:null_share" in record["message"] and "entirely null" in record["message"]
    valid, quarantine = assert_nothing_lost(dataset)
    assert len(valid) == 0 and len(quarantine) == 100


def test_duplicate_keys_are_quarantined_and_fail_over_threshold():
    dataset = "tx_duplicates"
    df = generate_day(DAY, 200)
    land(dataset, pd.concat([df, df.iloc[:30]], ignore_index=True))
    dag_run, states = run(dataset)
    assert states["validate"] == "failed"
    record = failure(dag_run, "validate")
    assert "transaction_id:unique=30" in record["message"] and "13.0% invalid > max 5.0%" in record["message"]
    valid, quarantine = assert_nothing_lost(dataset)
    assert len(valid) == 0 and len(quarantine) == 230  # failed: the whole partition is held back
    assert set(quarantine["_failed_checks"]) == {"transaction_id:unique", "partition:max_invalid_share"}
    # A higher threshold accepts the partition; the duplicates stay in quarantine.
    dag_run, states = run(dataset, max_invalid_share="0.2")
    assert states["validate"] == "success" and task_xcom(dag_run, "validate")["invalid_rows"] == 30
    valid, quarantine = assert_nothing_lost(dataset)
    assert len(valid) == 200 and set(quarantine["_failed_checks"]) == {"transaction_id:unique"}


def test_future_timestamps_are_quarantined():
    dataset = "tx_future"
    today = datetime.now(UTC).date() - timedelta(days=1)  # a complete day, all in the past
    df = generate_day(today, 100)
    df.loc[:19, "event_timestamp"] = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=3)
    land(dataset, df, day=today)
    dag_run, states = run(dataset, today)
    assert states["validate"] == "failed"
    message = failure(dag_run, "validate")["message"]
    assert "event_timestamp:not_future=20" in message
    valid, quarantine = assert_nothing_lost(dataset, today)
    assert len(valid) == 0 and len(quarantine) == 100
    future = quarantine["_failed_checks"].str.contains("event_timestamp:not_future")
    assert future.sum() == 20 and (quarantine.loc[~future, "_failed_checks"] == "partition:max_invalid_share").all()


def test_row_count_spike_quarantines_the_partition():
    dataset = "tx_spike"
    days = [DAY + timedelta(days=i) for i in range(4)]
    for day in days[:3]:
        land(dataset, generate_day(day, 100), day=day)
    land(dataset, generate_day(days[3], 1000, world_rows_per_day=100), day=days[3])
    dag_run, states = run(dataset, days[0], days[2])
    assert states["validate"] == "success"
    dag_run, states = run(dataset, days[3])
    assert states["validate"] == "failed"
    message = failure(dag_run, "validate")["message"]
    assert "dataset:row_count_change" in message and "10.0x" in message
    valid, quarantine = assert_nothing_lost(dataset, days[3])
    assert len(valid) == 0 and len(quarantine) == 1000


def test_s3_source_and_zones_through_moto(s3_bucket, moto_server, monkeypatch):
    import boto3

    monkeypatch.setenv("AIRFLOW__MLOPS__DATA_ROOT", f"s3://{s3_bucket}/mlops")
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    buffer = io.BytesIO()
    generate_day(DAY, 250).to_parquet(buffer, index=False)
    client.put_object(Bucket=s3_bucket, Key=f"exports/{DAY}/part-0.parquet", Body=buffer.getvalue())
    source = f"s3://{s3_bucket}/exports/{{ds}}/"
    dag_run, states = run("tx_s3", source_uri=source)
    assert states == {"ingest": "success", "validate": "success"}
    ingested = task_xcom(dag_run, "ingest")
    assert ingested["partitions"][0]["uri"] == f"s3://{s3_bucket}/mlops/raw/tx_s3/dt={DAY}/data.parquet"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert {
        f"mlops/raw/tx_s3/dt={DAY}/data.parquet",
        f"mlops/validated/tx_s3/dt={DAY}/data.parquet",
        f"mlops/quarantine/tx_s3/dt={DAY}/data.parquet",
        f"mlops/reports/validation/tx_s3/dt={DAY}/report.json",
    } <= keys
    assert not [k for k in keys if k.endswith(".tmp")]
    version = ingested["partitions"][0]["version"]
    assert {
        f"mlops/raw/tx_s3/dt={DAY}/_versions/{version}/data.parquet",
        f"mlops/raw/tx_s3/dt={DAY}/_versions/{version}/version.json",
        f"mlops/raw/tx_s3/dt={DAY}/_versions/CURRENT",
    } <= keys
    # Retention on object storage: new content moves the pointer, the old version's objects are deleted.
    from mlops_provider.partitions import current_version, write_partition

    raw_zone = f"s3://{s3_bucket}/mlops/raw/tx_s3"
    newer = write_partition(b"PAR1 not really parquet", raw_zone, DAY, retain=1)
    assert current_version(raw_zone, DAY) == newer != version
    versions = {
        o["Key"]
        for o in client.list_objects_v2(Bucket=s3_bucket, Prefix=f"mlops/raw/tx_s3/dt={DAY}/_versions/")["Contents"]
    }
    assert (
        not [k for k in versions if f"/{version}/" in k]
        and f"mlops/raw/tx_s3/dt={DAY}/_versions/{newer}/data.parquet" in versions
    )
    body = client.get_object(Bucket=s3_bucket, Key=f"mlops/validated/tx_s3/dt={DAY}/data.parquet")["Body"].read()
    assert len(pd.read_parquet(io.BytesIO(body))) == 250
    link = task_xcom(dag_run, "validate", key="_link_validation_report")
    assert link.startswith(f"https://s3.console.aws.amazon.com/s3/object/{s3_bucket}?prefix=")
