"""Change-point aggregates: exact window values strictly before every instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_provider.features.aggregates import (
    AggregateField,
    AggregateSpec,
    FeatureDefinitionError,
    build_partitions,
    compute_change_points,
)

SPEC = AggregateSpec(
    view="customer_stats",
    source_dataset="transactions",
    key="customer_id",
    timestamp="event_timestamp",
    path="/unused",
    fields=(
        AggregateField("count_1h", "count", timedelta(hours=1)),
        AggregateField("sum_1d", "sum", timedelta(days=1), "amount"),
        AggregateField("mean_1d", "mean", timedelta(days=1), "amount"),
    ),
)


def events(n: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-11-01", tz="UTC")
    return pd.DataFrame(
        {
            "customer_id": rng.integers(1, 8, size=n),
            "event_timestamp": start + pd.to_timedelta(rng.integers(0, 3 * 86_400_000_000, size=n), unit="us"),
            "amount": rng.uniform(1, 100, size=n).round(2),
        }
    )


def as_of(rows: pd.DataFrame, key, at: pd.Timestamp) -> pd.Series | None:
    mine = rows[(rows["customer_id"] == key) & (rows["event_timestamp"] <= at)]
    return None if mine.empty else mine.iloc[-1]


def test_as_of_lookup_equals_brute_force_at_any_instant():
    ev = events()
    start, end = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC)
    rows = compute_change_points(ev, SPEC, start, end)
    assert rows["event_timestamp"].between(start, end, inclusive="left").all()
    assert not rows.duplicated(["customer_id", "event_timestamp"]).any()
    rng = np.random.default_rng(2)
    probes = list(ev["event_timestamp"][ev["event_timestamp"] >= start]) + list(
        pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, 2 * 86_400_000_000, size=200), unit="us")
    )
    for at in probes:
        for key in range(1, 8):
            row = as_of(rows, key, at)
            assert row is not None  # the baseline row at ``start`` covers every entity
            before = ev[(ev["customer_id"] == key) & (ev["event_timestamp"] < at)]
            hour = before[before["event_timestamp"] >= at - timedelta(hours=1)]
            day = before[before["event_timestamp"] >= at - timedelta(days=1)]
            assert row["count_1h"] == len(hour)
            assert row["sum_1d"] == pytest.approx(day["amount"].sum(), abs=1e-6)
            assert row["mean_1d"] == pytest.approx(day["amount"].mean() if len(day) else 0.0, abs=1e-6)


def test_an_event_never_sees_itself():
    ev = pd.DataFrame(
        {
            "customer_id": [1, 1],
            "event_timestamp": pd.to_datetime(["2026-11-02 10:00", "2026-11-02 11:00"], utc=True),
            "amount": [10.0, 990.0],
        }
    )
    rows = compute_change_points(ev, SPEC, datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    at_second = as_of(rows, 1, pd.Timestamp("2026-11-02 11:00", tz="UTC"))
    # At 11:00 the 11:00 event is not counted yet; the 10:00 one still is (window [10:00, 11:00)).
    assert at_second["sum_1d"] == 10.0 and at_second["count_1h"] == 1
    after = as_of(rows, 1, pd.Timestamp("2026-11-02 11:00:00.000001", tz="UTC"))
    # One microsecond later 10:00 has left the hour and 11:00 has entered.
    assert after["sum_1d"] == 1000.0 and after["count_1h"] == 1


def test_build_partitions_needs_window_days_and_writes_each_day():
    ev = events()
    by_day = {d: g for d, g in ev.groupby(ev["event_timestamp"].dt.date)}
    written = {}
    result = build_partitions(
        SPEC,
        [date(2026, 11, 2), date(2026, 11, 3)],
        lambda d: by_day.get(d),
        lambda d, frame: written.setdefault(d, frame) is not None and f"mem://{d}",
    )
    assert [r["date"] for r in result] == ["2026-11-02", "2026-11-03"]
    full = compute_change_points(ev, SPEC, datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC))
    assert sum(len(f) for f in written.values()) == len(full)
    with pytest.raises(Exception, match="dt=2026-11-09 does not exist"):
        build_partitions(SPEC, [date(2026, 11, 9)], lambda d: None, lambda d, f: "")


def test_view_tags_are_validated():
    from feast import Entity, FeatureView, Field, FileSource
    from feast.types import Int64

    from mlops_provider.features.aggregates import spec_from_view

    entity = Entity(name="customer", join_keys=["customer_id"])
    source = FileSource(path="/tmp/x", timestamp_field="event_timestamp")
    view = FeatureView(
        name="v",
        entities=[entity],
        schema=[Field(name="n", dtype=Int64, tags={"aggregation": "median", "window": "1d"})],
        source=source,
        tags={"mlops.aggregate.source": "transactions", "mlops.aggregate.key": "customer_id"},
    )
    with pytest.raises(FeatureDefinitionError, match="field n: tag 'aggregation' must be one of"):
        spec_from_view(view)
    plain = FeatureView(name="p", entities=[entity], schema=[Field(name="n", dtype=Int64)], source=source)
    assert spec_from_view(plain) is None
