"""Change-point aggregates: exact window values strictly before every instant."""

from __future__ import annotations

import math
import re
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
            if len(day):
                assert row["sum_1d"] == pytest.approx(day["amount"].sum(), abs=1e-6)
                assert row["mean_1d"] == pytest.approx(day["amount"].mean(), abs=1e-6)
            else:  # SQL semantics: no values, no sum and no mean
                assert pd.isna(row["sum_1d"]) and pd.isna(row["mean_1d"])


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


def test_build_in_entity_passes_writes_what_one_pass_writes():
    ev = events(n=2000, seed=3).assign(customer_id=lambda f: f["customer_id"] * 10 + np.arange(len(f)) % 10)
    by_day = {d: g for d, g in ev.groupby(ev["event_timestamp"].dt.date)}
    days = [date(2026, 11, 2), date(2026, 11, 3)]
    one_pass: dict[date, pd.DataFrame] = {}
    in_passes: dict[date, pd.DataFrame] = {}
    build_partitions(SPEC, days, by_day.get, lambda d, frame: one_pass.setdefault(d, frame) is not None and "")
    build_partitions(
        SPEC, days, by_day.get, lambda d, frame: in_passes.setdefault(d, frame) is not None and "", pass_events=150
    )
    assert ev["customer_id"].nunique() > 20  # so 150 events per pass means many passes
    for day in days:
        assert len(one_pass[day]) > 100
        pd.testing.assert_frame_equal(in_passes[day], one_pass[day], check_exact=False, atol=2e-6, rtol=0)
        assert (in_passes[day].dtypes == one_pass[day].dtypes).all()


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


@pytest.mark.parametrize(
    ("field_tags", "error"),
    [
        ({"label_lag": "1d"}, "field n: label_lag '1d' must be shorter than window '1d'"),
        ({"label_lag": "2d"}, "field n: label_lag '2d' must be shorter than window '1d'"),
        ({"label_lag": "-1h"}, "field n: label_lag '-1h' is not a duration"),
        ({"label_lag": "soon"}, "field n: label_lag 'soon' is not a duration"),
        ({"window": "0h"}, "field n: window '0h' must be longer than zero"),
        ({"aggregation": "last", "column": ""}, "field n: a last needs tag 'column'"),
    ],
)
def test_label_lag_and_window_are_validated(field_tags, error):
    from feast import Entity, FeatureView, Field, FileSource
    from feast.types import Float64

    from mlops_provider.features.aggregates import spec_from_view

    tags = {"aggregation": "max", "column": "x", "window": "1d", **field_tags}
    view = FeatureView(
        name="v",
        entities=[Entity(name="e", join_keys=["e_id"])],
        schema=[Field(name="n", dtype=Float64, tags=tags)],
        source=FileSource(path="/tmp/x", timestamp_field="ts"),
        tags={"mlops.aggregate.source": "events", "mlops.aggregate.key": "e_id"},
    )
    with pytest.raises(FeatureDefinitionError, match=f"^Feature view v, {re.escape(error)}"):
        spec_from_view(view)


def test_label_lag_tag_is_parsed():
    from feast import Entity, FeatureView, Field, FileSource
    from feast.types import Float64, Int64

    from mlops_provider.features.aggregates import spec_from_view

    view = FeatureView(
        name="v",
        entities=[Entity(name="e", join_keys=["e_id"])],
        schema=[
            Field(name="n", dtype=Int64, tags={"aggregation": "distinct_count", "column": "c", "window": "7d"}),
            Field(
                name="s", dtype=Float64, tags={"aggregation": "std", "column": "x", "window": "7d", "label_lag": "2d"}
            ),
        ],
        source=FileSource(path="/tmp/x", timestamp_field="ts"),
        tags={"mlops.aggregate.source": "events", "mlops.aggregate.key": "e_id"},
    )
    spec = spec_from_view(view)
    assert spec is not None
    assert [(f.function, f.label_lag) for f in spec.fields] == [
        ("distinct_count", timedelta(0)),
        ("std", timedelta(days=2)),
    ]
    assert spec.max_window == timedelta(days=7) and spec.columns == ["c", "x"]


# --- Every function, with nulls, ties and label lags, against a plain-Python reference -----------------

FUNCTIONS = ("count", "sum", "mean", "std", "min", "max", "last", "distinct_count")
WINDOWS = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}
LAGS = {"0s": timedelta(0), "30m": timedelta(minutes=30), "6h": timedelta(hours=6)}
T0 = pd.Timestamp("2026-11-01", tz="UTC")


def all_fields() -> tuple[AggregateField, ...]:
    fields = []
    for wname, window in WINDOWS.items():
        for lname, lag in LAGS.items():
            if lag >= window:
                continue
            fields.append(AggregateField(f"events_{wname}_{lname}", "count", window, None, lag))
            fields.append(AggregateField(f"dcat_{wname}_{lname}", "distinct_count", window, "cat", lag))
            for function in FUNCTIONS:
                fields.append(AggregateField(f"{function}_{wname}_{lname}", function, window, "x", lag))
    return tuple(fields)


FULL = AggregateSpec("stats", "events", "entity", "ts", "/unused", all_fields())


def messy_events(n: int = 360, seed: int = 7) -> pd.DataFrame:
    """Events of 5 entities over 3 days: ~20% null values, few distinct values, many same-instant ties."""
    rng = np.random.default_rng(seed)
    # Minute resolution over 3 days, then a third of the rows copy another row's entity and instant.
    minutes = rng.integers(0, 3 * 24 * 60, size=n) * 60_000_000 + rng.integers(0, 2, size=n)  # in microseconds
    entity = rng.integers(1, 6, size=n)
    twins = rng.random(n) < 0.33
    source = rng.integers(0, n, size=n)
    minutes[twins], entity[twins] = minutes[source[twins]], entity[source[twins]]
    x = rng.integers(-3, 8, size=n).astype("float64") * 1.5
    x[rng.random(n) < 0.2] = np.nan
    cat = rng.choice(np.array(["a", "b", "c", "d", "e", "f"], dtype=object), size=n)
    cat[rng.random(n) < 0.2] = None
    dense = pd.DataFrame(
        {
            "entity": entity,
            "ts": T0 + pd.to_timedelta(minutes, unit="us"),
            "x": x,
            "cat": cat,
        }
    )
    # Entity 6 is sparse: its day windows empty out too.
    sparse = pd.DataFrame(
        {
            "entity": 6,
            "ts": T0 + pd.to_timedelta([5, 30, 31, 31, 60], unit="h"),
            "x": [1.0, np.nan, 2.0, 3.0, np.nan],
            "cat": ["a", None, "a", "b", "c"],
        }
    )
    return pd.concat([dense, sparse], ignore_index=True).sample(frac=1.0, random_state=seed)  # order must not matter


def known_in_window(rows: list[tuple], window: timedelta, lag: timedelta, at_us: int) -> list[tuple]:
    """The definition, literally: events with ``at - window <= t < at`` and ``t + lag < at`` (microseconds)."""
    w, lag_us = window // timedelta(microseconds=1), lag // timedelta(microseconds=1)
    return [(t, x, c) for t, x, c in rows if at_us - w <= t < at_us and t + lag_us < at_us]


def reference(mine: list[tuple], field: AggregateField):
    """``field``'s function over the events ``mine`` (tuples of time, x, cat), in plain Python."""
    if field.column is None:
        return len(mine)
    if field.function == "distinct_count":
        picked = [c for _, _, c in mine] if field.column == "cat" else [x for _, x, _ in mine]
        return len({v for v in picked if v is not None and v == v})  # v == v: not NaN
    values = [(t, x) for t, x, _ in mine if not math.isnan(x)]
    xs = [x for _, x in values]
    if field.function == "count":
        return len(xs)
    if field.function == "sum":
        return sum(xs) if xs else None
    if field.function == "mean":
        return sum(xs) / len(xs) if xs else None
    if field.function == "std":
        if len(xs) < 2:
            return None
        m = sum(xs) / len(xs)
        return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    if field.function == "min":
        return min(xs) if xs else None
    if field.function == "max":
        return max(xs) if xs else None
    if field.function == "last":
        if not xs:
            return None
        latest = max(t for t, _ in values)
        return max(x for t, x in values if t == latest)
    raise AssertionError(field.function)


def probes(ev: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Instants where values change (and one microsecond either side), plus random ones, per entity."""
    rng = np.random.default_rng(seed)
    frames = []
    us = timedelta(microseconds=1)
    shifts = {timedelta(0)} | set(LAGS.values()) | set(WINDOWS.values())
    for shift in shifts:
        for delta in (-us, timedelta(0), us, 2 * us):
            frames.append(ev[["entity"]].assign(at=ev["ts"] + shift + delta))
    random_at = start + pd.to_timedelta(rng.integers(0, int((end - start) / us), size=300), unit="us")
    frames.append(pd.DataFrame({"entity": rng.integers(1, 7, size=300), "at": random_at}))
    frames.append(pd.DataFrame({"entity": np.arange(1, 7), "at": [start] * 6}))
    out = pd.concat(frames, ignore_index=True)
    return out[(out["at"] >= start) & (out["at"] < end)].drop_duplicates().reset_index(drop=True)


@pytest.mark.parametrize("seed", [7, 8])
def test_every_function_equals_the_definition_at_any_instant(seed):
    ev = messy_events(seed=seed)
    start, end = pd.Timestamp("2026-11-02", tz="UTC"), pd.Timestamp("2026-11-04", tz="UTC")
    rows = compute_change_points(ev, FULL, start.to_pydatetime(), end.to_pydatetime())
    assert rows["ts"].between(start, end, inclusive="left").all()
    assert not rows.duplicated(["entity", "ts"]).any()
    assert rows["ts"].is_monotonic_increasing
    for f in FULL.fields:
        assert str(rows[f.name].dtype) == ("int64" if f.function in ("count", "distinct_count") else "float64")

    asked = probes(ev, start, end, seed).sort_values("at", kind="stable")
    asked["at"] = asked["at"].astype(rows["ts"].dtype)
    found = pd.merge_asof(asked, rows, left_on="at", right_on="ts", by="entity", direction="backward")
    assert found["ts"].notna().all()  # the baseline row at ``start`` covers every entity
    stamps = ev["ts"].to_numpy(dtype="datetime64[us]").astype("int64")
    history = {
        key: list(zip(stamps[ev["entity"].to_numpy() == key], g["x"], g["cat"], strict=True))
        for key, g in ev.groupby("entity", sort=False)
    }
    groups: dict[tuple, list[AggregateField]] = {}
    for f in FULL.fields:
        groups.setdefault((f.window, f.label_lag), []).append(f)
    at_us = found["at"].to_numpy(dtype="datetime64[us]").astype("int64")
    checked = 0
    for i, probe in enumerate(found.to_dict("records")):
        for (window, lag), fields in groups.items():
            mine = known_in_window(history.get(probe["entity"], []), window, lag, int(at_us[i]))
            for f in fields:
                expected, got = reference(mine, f), probe[f.name]
                where = (f.name, probe["entity"], probe["at"], got, expected)
                if expected is None:
                    assert pd.isna(got), where
                else:
                    assert abs(got - expected) <= 1e-6, where
                checked += 1
    assert checked > 50_000
    # The data exercise what they should: nulls, ties, empty windows and non-empty ones of every field.
    valued = found[[f.name for f in FULL.fields if f.function not in ("count", "distinct_count")]]
    assert valued.notna().any().all()
    assert valued.isna().any().all()
    assert (found[[f.name for f in FULL.fields if f.function == "count"]] == 0).any().all()
    assert ev.duplicated(["entity", "ts"]).sum() > 60


def _events_spec(*fields: AggregateField) -> AggregateSpec:
    """A view over ``events`` keyed by ``entity`` at ``ts`` with ``fields``."""
    return AggregateSpec("v", "events", "entity", "ts", "/unused", fields)


def test_label_lag_delays_entry_but_not_exit():
    spec = _events_spec(
        AggregateField("n", "count", timedelta(hours=10)),
        AggregateField("n_lag", "count", timedelta(hours=10), None, timedelta(hours=2)),
        AggregateField("sum_lag", "sum", timedelta(hours=10), "x", timedelta(hours=2)),
    )
    ev = pd.DataFrame({"entity": [1], "ts": [pd.Timestamp("2026-11-02 10:00", tz="UTC")], "x": [5.0]})
    rows = compute_change_points(ev, spec, datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    us = timedelta(microseconds=1)
    expect = {
        "10:00": (0, 0, None),
        "10:00:00.000001": (1, 0, None),
        "12:00": (1, 0, None),  # known at 12:00 exactly: not strictly before
        "12:00:00.000001": (1, 1, 5.0),
        "20:00": (1, 1, 5.0),  # window [10:00, 20:00) still holds the 10:00 event
        "20:00:00.000001": (0, 0, None),  # it leaves at t + w + 1us, lag or not
    }
    for at, (n, n_lag, total) in expect.items():
        row = as_of(
            rows.rename(columns={"entity": "customer_id", "ts": "event_timestamp"}),
            1,
            pd.Timestamp(f"2026-11-02 {at}", tz="UTC"),
        )
        assert (row["n"], row["n_lag"]) == (n, n_lag), at
        assert pd.isna(row["sum_lag"]) if total is None else row["sum_lag"] == total, at
    # The lagged entry is a change point of its own.
    assert pd.Timestamp("2026-11-02 12:00", tz="UTC") + us in set(rows["ts"])


def test_nulls_are_skipped_not_zero():
    spec = _events_spec(
        *(AggregateField(fn, fn, timedelta(days=1), "x") for fn in FUNCTIONS),
        AggregateField("events", "count", timedelta(days=1)),
    )
    ev = pd.DataFrame(
        {
            "entity": [1, 1, 1, 2],
            "ts": pd.to_datetime(
                ["2026-11-02 01:00", "2026-11-02 02:00", "2026-11-02 02:00", "2026-11-02 01:00"], utc=True
            ),
            "x": pd.array([4.0, None, 2.0, None], dtype="Float64"),  # a nullable column reads too
        }
    )
    rows = compute_change_points(ev, spec, datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    last = rows.drop_duplicates("entity", keep="last").set_index("entity")  # after every event
    one, two = last.loc[1], last.loc[2]
    assert (one["events"], one["count"], one["sum"], one["mean"]) == (3, 2, 6.0, 3.0)
    assert one["std"] == pytest.approx(math.sqrt(2.0))
    assert (one["min"], one["max"], one["last"], one["distinct_count"]) == (2.0, 4.0, 2.0, 2)
    # Only a null: one event, no value. SQL semantics: counts 0, everything else null.
    assert (two["events"], two["count"], two["distinct_count"]) == (1, 0, 0)
    assert two[["sum", "mean", "std", "min", "max", "last"]].isna().all()


def test_a_range_starting_more_than_a_window_before_the_first_event():
    """Baseline rows at ``start`` search their own entity's events only (this once raised an IndexError)."""
    spec = _events_spec(AggregateField("n", "count", timedelta(hours=1)))
    ev = pd.DataFrame(
        {
            "entity": [1, 1, 2],
            "ts": pd.to_datetime(["2026-11-02 22:00", "2026-11-02 22:30", "2026-11-02 23:00"], utc=True),
        }
    )
    rows = compute_change_points(ev, spec, datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    baseline = rows[rows["ts"] == pd.Timestamp("2026-11-02", tz="UTC")]
    assert list(baseline["n"]) == [0, 0]


def test_range_kernels_on_long_ranges():
    """The min/max/last/distinct kernels on ranges of thousands of rows (deep sparse-table levels)."""
    from mlops_provider.features.aggregates import _range_distinct, _range_extreme, _range_last

    rng = np.random.default_rng(3)
    n = 6000
    codes = np.repeat(np.arange(3, dtype="int64"), n // 3)
    ts = np.sort(rng.integers(0, 500, size=n)) + codes * 1000  # ties within each entity
    values = rng.integers(0, 40, size=n).astype("float64")
    values[rng.random(n) < 0.3] = np.nan
    value_codes = np.where(np.isnan(values), -1, values).astype("int64")
    entity = rng.integers(0, 3, size=400)
    a, b = rng.integers(0, n // 3 + 1, size=(2, 400))
    # Ranges start and end on instant boundaries, as windows do (all rows of an instant or none).
    first_of = np.searchsorted(ts, ts, side="left")
    edges = np.append(first_of, n)
    lo = edges[np.minimum(a, b) + entity * (n // 3)]
    hi = edges[np.maximum(a, b) + entity * (n // 3)]
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    assert (hi - lo).max() > 1500
    got_min, got_max = _range_extreme(values, lo, hi, np.fmin), _range_extreme(values, lo, hi, np.fmax)
    got_last, got_distinct = _range_last(values, codes, ts, lo, hi), _range_distinct(value_codes, codes, lo, hi)
    for i, (start, stop) in enumerate(zip(lo, hi, strict=True)):
        part, stamps = values[start:stop], ts[start:stop]
        present = ~np.isnan(part)
        if not present.any():
            assert np.isnan(got_min[i]) and np.isnan(got_max[i]) and np.isnan(got_last[i]) and got_distinct[i] == 0
            continue
        assert (got_min[i], got_max[i]) == (part[present].min(), part[present].max())
        latest = stamps[present].max()
        assert got_last[i] == part[present & (stamps == latest)].max()
        assert got_distinct[i] == len(set(part[present]))


def test_materialization_chunks_cover_the_window_once_oldest_first():
    from datetime import UTC, datetime, timedelta

    from mlops_provider.operators.feast import materialization_chunks

    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = datetime(2026, 3, 8, tzinfo=UTC) - timedelta(microseconds=1)  # seven whole days
    chunks = materialization_chunks(start, end, 3)
    assert [(a.day, b.day) for a, b in chunks] == [(1, 3), (4, 6), (7, 7)]
    assert chunks[0][0] == start and chunks[-1][1] == end
    assert all(b + timedelta(microseconds=1) == a for (_, b), (a, _) in zip(chunks, chunks[1:], strict=False))
    assert materialization_chunks(start, end, 30) == [(start, end)]
