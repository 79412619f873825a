"""Feast through Airflow: apply, materialize, and point-in-time training sets without leakage.

The module builds one small world (9 days of transactions, ingested and validated through Airflow),
then checks every served and training feature against a brute-force computation over the raw events.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.data_generator import generate_day
from tests.airflow_helpers import run_dag, task_states, task_xcom

pytestmark = pytest.mark.integration

FIRST = date(2026, 2, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(9)]
TRAIN_START, TRAIN_END = DAYS[2], DAYS[-1]


def data_root() -> Path:
    from mlops_provider.settings import get_settings

    return Path(get_settings().data_root.removeprefix("file://"))


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    """Land, ingest and validate the days; return every validated event."""
    for day in DAYS:
        target = data_root() / "landing" / "transactions" / f"dt={day}" / "part-0.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        generate_day(day, 300, seed=11).to_parquet(target, index=False)
    dag_run = run_dag(
        "data_ingest_validate", conf={"dataset": "transactions", "start": f"{DAYS[0]}", "end": f"{DAYS[-1]}"}
    )
    assert task_states(dag_run) == {"ingest": "success", "validate": "success"}
    events = pd.concat(
        [pd.read_parquet(data_root() / "validated" / "transactions" / f"dt={d}" / "data.parquet") for d in DAYS],
        ignore_index=True,
    )
    assert len(events) == 300 * len(DAYS)
    return events


@pytest.fixture(scope="module")
def built(world):
    """Run apply -> materialize -> training set once; return (dag_run xcoms, training set DataFrame)."""
    dag_run = run_dag("data_features", conf={"start": f"{TRAIN_START}", "end": f"{TRAIN_END}"})
    assert task_states(dag_run) == {
        "apply_features": "success",
        "materialize_features": "success",
        "build_training_set": "success",
    }
    xcoms = {t: task_xcom(dag_run, t) for t in ("apply_features", "materialize_features", "build_training_set")}
    manifest = xcoms["build_training_set"]
    data = pd.read_parquet(manifest["uri"].removeprefix("file://"))
    return dag_run, xcoms, data


def brute_force(events: pd.DataFrame, key: str, entity, at: pd.Timestamp, window: timedelta) -> tuple[int, float]:
    """Count and sum of ``amount`` over the entity's events in ``[at - window, at)``."""
    mine = events[
        (events[key] == entity) & (events["event_timestamp"] < at) & (events["event_timestamp"] >= at - window)
    ]
    return len(mine), float(mine["amount"].sum())


def test_manifest_and_snapshot(built):
    dag_run, xcoms, data = built
    manifest = xcoms["build_training_set"]
    # The repository also registers the model specs' services (include/models/*.yaml) beside the example's.
    assert "fraud_model_v1" in xcoms["apply_features"]["applied"]["feature_services"]
    assert manifest["rows"] == len(data) == 300 * 7  # every label row of the window, none dropped
    assert manifest["uri"].endswith(f"/training_sets/transactions/{manifest['hash']}/data.parquet")
    assert manifest["start"] == f"{TRAIN_START}" and manifest["end"] == f"{TRAIN_END}"
    assert manifest["entity_columns"] == ["customer_id", "merchant_id"]
    assert manifest["label_column"] == "is_fraud" and manifest["timestamp_column"] == "event_timestamp"
    assert manifest["feature_refs"][0] == "customer_stats:customer_txn_count_1d"
    assert list(data.columns) == [
        "customer_id",
        "merchant_id",
        "event_timestamp",
        *manifest["feature_columns"],
        "is_fraud",
    ]
    assert all(pd.api.types.is_numeric_dtype(data[c]) for c in manifest["feature_columns"])
    on_disk = json.loads(Path(manifest["uri"].removeprefix("file://")).with_name("manifest.json").read_text())
    assert on_disk == manifest
    import hashlib

    payload = Path(manifest["uri"].removeprefix("file://")).read_bytes()
    assert hashlib.sha256(payload).hexdigest().startswith(manifest["hash"])

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = {e.source_task_id: e.extra for e in session.query(AssetEvent).filter_by(source_run_id=dag_run.run_id)}
    assert events["build_training_set"]["hash"] == manifest["hash"]
    assert events["materialize_features"]["feature_views"] == ["customer_stats", "merchant_stats"]


def test_training_set_keeps_the_timestamp_column_it_was_given(built):
    """A dataset whose event time has another name: the snapshot and its manifest use that name.

    Runs right after the snapshot it compares with (before the reruns below add and rebuild feature files).
    """
    from mlops_provider.operators.feast import FeastTrainingSetOperator

    _, xcoms, data = built
    for day in DAYS[2:]:
        frame = pd.read_parquet(data_root() / "validated" / "transactions" / f"dt={day}" / "data.parquet")
        frame["label_time"] = frame["event_timestamp"]
        target = data_root() / "validated" / "tx_label_time" / f"dt={day}" / "data.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(target, index=False)
    operator = FeastTrainingSetOperator(
        task_id="label_time_training_set",
        dataset="tx_label_time",
        feature_service="fraud_model_v1",
        label_column="is_fraud",
        timestamp_column="label_time",
        partition_start=f"{TRAIN_START}",
        partition_end=f"{TRAIN_END}",
        build_features=False,
    )
    manifest = operator.execute({})
    assert manifest["timestamp_column"] == "label_time"
    on_disk = json.loads(Path(manifest["uri"].removeprefix("file://")).with_name("manifest.json").read_text())
    assert on_disk["timestamp_column"] == "label_time"
    snapshot = pd.read_parquet(manifest["uri"].removeprefix("file://"))
    assert list(snapshot.columns) == [
        "customer_id",
        "merchant_id",
        "label_time",
        *manifest["feature_columns"],
        "is_fraud",
    ]
    # Same labels, same as-of features as the snapshot built on ``event_timestamp``.
    expected = data.rename(columns={"event_timestamp": "label_time"})
    pd.testing.assert_frame_equal(snapshot, expected)
    assert manifest["feature_columns"] == xcoms["build_training_set"]["feature_columns"]


def test_no_feature_value_from_after_the_label(built, world):
    """Each aggregate equals the brute-force aggregate over events strictly before the label's timestamp."""
    _, _, data = built
    sample = data.sample(n=250, random_state=3)
    checks = [
        ("customer_id", "customer_txn_count_1d", "count", timedelta(days=1)),
        ("customer_id", "customer_txn_count_7d", "count", timedelta(days=7)),
        ("customer_id", "customer_amount_sum_1d", "sum", timedelta(days=1)),
        ("customer_id", "customer_amount_mean_7d", "mean", timedelta(days=7)),
        ("merchant_id", "merchant_txn_count_7d", "count", timedelta(days=7)),
        ("merchant_id", "merchant_amount_mean_7d", "mean", timedelta(days=7)),
    ]
    compared = 0
    for _, row in sample.iterrows():
        at = row["event_timestamp"]
        for key, column, function, window in checks:
            count, total = brute_force(world, key, row[key], at, window)
            value = row[column]
            if function != "count" and count == 0:  # SQL semantics: no values, no sum and no mean
                assert pd.isna(value), (column, row[key], at)
            else:
                expected = {"count": count, "sum": total, "mean": total / count if count else None}[function]
                assert value == pytest.approx(expected, abs=1e-4), (column, row[key], at)
            compared += 1
    assert compared > 1000


def test_an_event_never_counts_in_its_own_aggregates(built, world):
    """Every label row's own event is in the world, yet its counts and sums cover only earlier events."""
    _, _, data = built
    day = timedelta(days=1)
    pairs = data[["customer_id", "event_timestamp", "customer_txn_count_1d", "customer_amount_sum_1d"]].merge(
        world[["customer_id", "event_timestamp", "amount"]].rename(
            columns={"event_timestamp": "other_ts", "amount": "other_amount"}
        ),
        on="customer_id",
    )
    in_window = pairs[
        (pairs["other_ts"] >= pairs["event_timestamp"] - day) & (pairs["other_ts"] <= pairs["event_timestamp"])
    ]
    keys = ["customer_id", "event_timestamp"]
    inclusive = in_window.groupby(keys).size()
    earlier = in_window[in_window["other_ts"] < in_window["event_timestamp"]]
    strict_count = earlier.groupby(keys).size().reindex(inclusive.index, fill_value=0)
    strict_sum = earlier.groupby(keys)["other_amount"].sum().reindex(inclusive.index, fill_value=0.0)
    served = data.set_index(keys).loc[inclusive.index]
    assert len(served) == len(data)  # every label row found its own event in the world
    assert (inclusive >= strict_count + 1).all()  # ... so a count that included it would be at least one more
    assert (served["customer_txn_count_1d"].to_numpy() == strict_count.to_numpy()).all()
    firsts = (strict_count == 0).to_numpy()
    assert np.allclose(served["customer_amount_sum_1d"].to_numpy()[~firsts], strict_sum.to_numpy()[~firsts], atol=1e-4)
    # A customer's first event has nothing before it: a count of zero, not one (itself), and no sum
    # (null, as SQL's SUM over no rows), not its own amount.
    assert firsts.any()
    assert (served.loc[firsts, "customer_txn_count_1d"] == 0).all()
    assert served.loc[firsts, "customer_amount_sum_1d"].isna().all()


def test_request_features_match_the_transaction(built, world):
    _, _, data = built
    joined = data.merge(
        world[["customer_id", "event_timestamp", "amount", "channel"]], on=["customer_id", "event_timestamp"]
    )
    assert len(joined) == len(data)
    assert (joined["hour_of_day"] == joined["event_timestamp"].dt.hour).all()
    assert np.allclose(joined["amount_log"], np.log1p(joined["amount"]))
    assert (joined["is_online"] == (joined["channel"] == "online").astype(int)).all()


def test_online_features_are_the_training_columns_and_current(built, world):
    from mlops_provider.hooks.feast import FeastHook

    _, xcoms, _ = built
    manifest = xcoms["build_training_set"]
    store = FeastHook().get_feature_store()
    customer, merchant = int(world["customer_id"].iloc[-1]), int(world["merchant_id"].iloc[-1])
    request = {
        "customer_id": customer,
        "merchant_id": merchant,
        "amount": 250.0,
        "channel": "online",
        "card_present": 0,
        "merchant_category": "electronics",
        "event_timestamp": datetime(2026, 2, 10, 3, 30, tzinfo=UTC),
    }
    served = store.get_online_features(
        features=store.get_feature_service("fraud_model_v1"), entity_rows=[request]
    ).to_dict()
    assert set(served) - {"customer_id", "merchant_id"} == set(manifest["feature_columns"])
    end = pd.Timestamp(datetime.combine(TRAIN_END + timedelta(days=1), datetime.min.time()), tz="UTC")
    count_7d, total_7d = brute_force(world, "customer_id", customer, end, timedelta(days=7))
    assert served["customer_txn_count_7d"] == [count_7d]
    mean_7d = served["customer_amount_mean_7d"][0]
    if count_7d:
        assert mean_7d == pytest.approx(total_7d / count_7d, abs=1e-4)
    else:  # no transactions in the window: no mean (null), not 0
        assert mean_7d is None or np.isnan(mean_7d)
    assert served["hour_of_day"] == [3] and served["is_night"] == [1] and served["card_not_present"] == [1]
    assert served["merchant_category_code"] == [4]
    # The resolved feature_store.yaml the hook writes lets other clients (the model server) open the same stores.
    from feast import FeatureStore

    from mlops_provider.settings import get_settings

    written = get_settings().feast_local_root / "feature_store.yaml"
    other = FeatureStore(repo_path=str(written.parent))
    again = other.get_online_features(features=other.get_feature_service("fraud_model_v1"), entity_rows=[request])
    assert again.to_dict() == served


def online_store_rows() -> dict[str, list[tuple]]:
    """Every row of the local (sqlite) online store, per table, without Feast's write timestamp."""
    import sqlite3

    from mlops_provider.settings import get_settings

    with sqlite3.connect(get_settings().feast_local_root / "online_store.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        out = {}
        for table in tables:
            columns = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")') if r[1] != "created_ts"]
            quoted = ", ".join(f'"{c}"' for c in columns)
            out[table] = sorted(db.execute(f'SELECT {quoted} FROM "{table}"').fetchall())
    return out


def test_rerun_is_idempotent(built):
    _, xcoms, _ = built
    before = online_store_rows()
    assert sum(len(rows) for rows in before.values()) > 0
    dag_run = run_dag("data_features", conf={"start": f"{TRAIN_START}", "end": f"{TRAIN_END}"})
    assert set(task_states(dag_run).values()) == {"success"}
    again = task_xcom(dag_run, "build_training_set")
    assert again["hash"] == xcoms["build_training_set"]["hash"] and again["rows"] == xcoms["build_training_set"]["rows"]
    assert task_xcom(dag_run, "apply_features")["deleted"] == []
    # Materializing the same interval again (a retry, or a re-run after a killed worker) leaves the
    # online store exactly as it was: same entities, values and event times.
    assert online_store_rows() == before
    # Materializing an older day afterwards does not move the online store back in time.
    older = run_dag("data_features", conf={"start": f"{TRAIN_START}", "end": f"{TRAIN_START}"})
    assert task_xcom(older, "materialize_features")["end"] == xcoms["materialize_features"]["end"]


def test_chunked_materialization_writes_what_one_call_writes(built):
    _, xcoms, _ = built
    before = online_store_rows()
    assert xcoms["materialize_features"]["chunks"] == 1  # 7 days, the default chunk of 7
    dag_run = run_dag("data_features", conf={"start": f"{TRAIN_START}", "end": f"{TRAIN_END}", "chunk_days": "2"})
    result = task_xcom(dag_run, "materialize_features")
    assert (result["chunks"], result["chunks_resumed"]) == (4, 0)
    assert online_store_rows() == before


def test_apply_of_a_changed_view_keeps_the_online_watermark(built):
    """A schema change re-registers the view: Feast must carry its materialized intervals over, or the next
    materialization of an older interval would move the online store back in time."""
    from feast import FeatureView
    from feast.protos.feast.core.Feature_pb2 import FeatureSpecV2
    from feast.protos.feast.types.Value_pb2 import ValueType

    from mlops_provider.hooks.feast import FeastHook

    _, xcoms, _ = built
    store = FeastHook().get_feature_store()
    view = store.get_feature_view("customer_stats")
    watermark = view.most_recent_end_time
    assert watermark is not None
    # As a repository edit arrives: one more feature, and no materialization history of its own.
    proto = view.to_proto()
    proto.spec.features.append(FeatureSpecV2(name="customer_extra_feature", value_type=ValueType.DOUBLE))
    del proto.meta.materialization_intervals[:]
    changed = FeatureView.from_proto(proto)
    assert changed.most_recent_end_time is None and len(changed.features) == len(view.features) + 1
    store.apply([changed])
    assert store.get_feature_view("customer_stats").most_recent_end_time == watermark
    # The DAG re-applies the repository's definition (another schema change), then materializes an older day.
    older = run_dag("data_features", conf={"start": f"{TRAIN_START}", "end": f"{TRAIN_START}"})
    assert task_xcom(older, "materialize_features")["end"] == xcoms["materialize_features"]["end"]
    assert FeastHook().get_feature_store().get_feature_view("customer_stats").most_recent_end_time == watermark


def test_product_feature_materialization_dag_runs_a_day(built):
    """The shipped ``feature_materialization`` DAG: sensor -> ingest -> validate -> apply -> materialize."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    day = date(2026, 11, 10)  # the DAG starts on 2026-11-01; no history before it: nothing to compare with
    target = data_root() / "landing" / "transactions" / f"dt={day}" / "part-0.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    generate_day(day, 300, seed=11).to_parquet(target, index=False)
    dag_run = run_dag("feature_materialization", logical_date=datetime.combine(day, datetime.min.time(), tzinfo=UTC))
    assert task_states(dag_run) == {
        "wait_for_source": "success",
        "ingest": "success",
        "validate": "success",
        "apply_features": "success",
        "materialize_features": "success",
    }
    assert task_xcom(dag_run, "validate")["partitions"][0]["date"] == f"{day}"
    assert task_xcom(dag_run, "materialize_features")["end"].startswith(f"{day}T23:59:59")
    with create_session() as session:
        names = {e.asset.name for e in session.query(AssetEvent).filter_by(source_run_id=dag_run.run_id)}
    assert names == {"raw.transactions", "validated.transactions", "features.fraud"}


def test_training_set_records_and_rebuilds_from_partition_versions(built):
    """The manifest names every validated partition version it read; pinned to them, a rebuild ignores newer data."""
    from mlops_provider.operators.feast import FeastTrainingSetOperator
    from mlops_provider.partitions import content_version, partition_key, write_partition
    from mlops_provider.settings import get_settings

    _, xcoms, _ = built
    manifest = xcoms["build_training_set"]
    recorded = manifest["partition_versions"]
    # Labels of the window plus the aggregates' look-back (the 7-day windows reach before the first day).
    assert {partition_key("validated", "transactions", d) for d in DAYS} == set(recorded)
    for day in DAYS:
        current = data_root() / "validated" / "transactions" / f"dt={day}" / "data.parquet"
        assert recorded[partition_key("validated", "transactions", day)] == content_version(current.read_bytes())

    # The data of a window day changes after the training set was built.
    zone = f"{get_settings().data_root}/validated/transactions"
    changed = TRAIN_END - timedelta(days=1)
    path = data_root() / "validated" / "transactions" / f"dt={changed}" / "data.parquet"
    original = path.read_bytes()
    frame = pd.read_parquet(path)
    frame["amount"] = frame["amount"] * 3
    manifest_file = Path(manifest["uri"].removeprefix("file://")).with_name("manifest.json")
    recorded_manifest = manifest_file.read_bytes()
    write_partition(frame.to_parquet(index=False), zone, changed)

    def rebuild(**pins) -> dict:
        return FeastTrainingSetOperator(
            task_id="rebuild",
            dataset="transactions",
            feature_service="fraud_model_v1",
            label_column="is_fraud",
            partition_start=f"{TRAIN_START}",
            partition_end=f"{TRAIN_END}",
            **pins,
        ).execute({})

    try:
        assert rebuild()["hash"] != manifest["hash"], "the current data changed the training set"
        features = sorted((data_root() / "features").rglob("*.parquet"))
        before = {p: p.read_bytes() for p in features}
        pinned = rebuild(partition_versions=recorded)
        assert pinned["hash"] == manifest["hash"], "pinned to the recorded versions: the same bytes"
        assert pinned["partition_versions"] == recorded
        assert {p: p.read_bytes() for p in features} == before, "a pinned rebuild never rewrites the views' files"
        assert manifest_file.read_bytes() == recorded_manifest, "the recorded manifest is left as it was"
    finally:
        write_partition(original, zone, changed)
    assert rebuild()["hash"] == manifest["hash"], "the current data is the original again"
