"""Aggregates through Feast's registry and the provider's as-of join: nulls, ties and label lags, no leakage.

A private Feast repository in a temporary folder (local registry, SQLite online store, the provider's
offline store): the feature view is declared with the aggregate tags, read back from the registry,
built with :func:`build_partitions`, and every value Feast's point-in-time join returns is compared
with the definition evaluated in plain Python (the reference of the unit tests). No Airflow: the
whole-DAG path is covered by ``test_features.py``; this checks the functions and tags the example
does not use.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_provider.features.aggregates import COUNT_FUNCTIONS, build_partitions, spec_from_view
from tests.unit.data.test_aggregates import FULL, known_in_window, messy_events, reference

pytestmark = pytest.mark.integration

DAYS = [date(2026, 11, 2), date(2026, 11, 3)]


@pytest.fixture
def store(tmp_path: Path):
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    (tmp_path / "feature_store.yaml").write_text(
        "project: aggregates_check\n"
        f"registry: {tmp_path / 'registry.db'}\n"
        "provider: local\n"
        f"online_store: {{type: sqlite, path: {tmp_path / 'online.db'}}}\n"
        "offline_store: {type: mlops_provider.features.offline_store.AsOfFileOfflineStore}\n"
        "entity_key_serialization_version: 3\n"
    )
    entity = Entity(name="thing", join_keys=["entity"], value_type=ValueType.INT64)
    schema = [Field(name="entity", dtype=Int64)]
    for f in FULL.fields:
        tags = {"aggregation": f.function, "window": f"{int(f.window.total_seconds())}s"}
        if f.column:
            tags["column"] = f.column
        if f.label_lag:
            tags["label_lag"] = f"{int(f.label_lag.total_seconds() // 60)}m"
        schema.append(Field(name=f.name, dtype=Int64 if f.function in COUNT_FUNCTIONS else Float64, tags=tags))
    view = FeatureView(
        name="stats",
        entities=[entity],
        ttl=timedelta(0),
        schema=schema,
        source=FileSource(name="stats_source", path=str(tmp_path / "features" / "stats"), timestamp_field="ts"),
        tags={"mlops.aggregate.source": "events", "mlops.aggregate.key": "entity", "mlops.aggregate.timestamp": "ts"},
    )
    feature_store = FeatureStore(repo_path=str(tmp_path))
    feature_store.apply([entity, view])
    return feature_store


def test_feast_as_of_join_returns_the_definition(store):
    spec = spec_from_view(store.get_feature_view("stats"))  # the tags as the registry stored them
    assert spec is not None
    assert [(f.name, f.function, f.window, f.column, f.label_lag) for f in spec.fields] == [
        (f.name, f.function, f.window, f.column, f.label_lag) for f in FULL.fields
    ]
    ev = messy_events(seed=9)
    by_day = {d: g for d, g in ev.groupby(ev["ts"].dt.date)}

    def write_day(day: date, frame: pd.DataFrame) -> str:
        path = Path(spec.file_uri(day).removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        return str(path)

    written = build_partitions(spec, DAYS, by_day.get, write_day)
    assert [w["date"] for w in written] == [f"{d}" for d in DAYS]

    # Labels at every event of the built days (the leakage case: the label's own event must not count,
    # and a lagged value must not count before it is known), at the instants lagged values become known,
    # and at random instants.
    rng = np.random.default_rng(9)
    start, end = pd.Timestamp(f"{DAYS[0]}", tz="UTC"), pd.Timestamp(f"{DAYS[-1] + timedelta(days=1)}", tz="UTC")
    labels = pd.concat(
        [ev[["entity", "ts"]]]
        + [ev[["entity"]].assign(ts=ev["ts"] + lag) for lag in (timedelta(minutes=30), timedelta(hours=6))]
        + [
            pd.DataFrame(
                {
                    "entity": rng.integers(1, 7, size=200),
                    "ts": start + pd.to_timedelta(rng.integers(0, 2 * 86_400_000_000, size=200), unit="us"),
                }
            )
        ],
        ignore_index=True,
    ).rename(columns={"ts": "event_timestamp"})
    labels = labels[(labels["event_timestamp"] >= start) & (labels["event_timestamp"] < end)].reset_index(drop=True)
    got = store.get_historical_features(entity_df=labels, features=[f"stats:{f.name}" for f in spec.fields]).to_df()
    assert len(got) == len(labels)

    stamps = ev["ts"].to_numpy(dtype="datetime64[us]").astype("int64")
    history = {
        key: list(zip(stamps[ev["entity"].to_numpy() == key], g["x"], g["cat"], strict=True))
        for key, g in ev.groupby("entity", sort=False)
    }
    at_us = pd.to_datetime(got["event_timestamp"], utc=True).to_numpy(dtype="datetime64[us]").astype("int64")
    checked = 0
    for i, row in enumerate(got.to_dict("records")):
        windows: dict[tuple, list] = {}
        for f in spec.fields:
            key = (f.window, f.label_lag)
            if key not in windows:
                windows[key] = known_in_window(history[row["entity"]], f.window, f.label_lag, int(at_us[i]))
            expected, value = reference(windows[key], f), row[f.name]
            where = (f.name, row["entity"], row["event_timestamp"], value, expected)
            if expected is None:
                assert value is None or pd.isna(value), where
            else:
                assert abs(value - expected) <= 1e-6, where
            checked += 1
    assert checked > 20_000
    assert got[[f.name for f in spec.fields if f.function not in COUNT_FUNCTIONS]].isna().any().all()
