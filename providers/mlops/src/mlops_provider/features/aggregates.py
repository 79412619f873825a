"""Point-in-time windowed aggregates per entity, declared on Feast feature views and built from a data zone.

A feature view opts in with tags::

    tags={"mlops.aggregate.source": "<dataset>",       # dataset in the validated zone
          "mlops.aggregate.key": "<entity_key>",        # entity join key (a column of the dataset)
          "mlops.aggregate.timestamp": "<event_time>"}  # event time column

and each aggregate field carries ``tags={"aggregation": <function>, "column": "<value_column>",
"window": "7d"}``, optionally with ``"label_lag": "2d"``. Durations are ``<int><s|m|h|d|w>``. The view's
``FileSource`` path is where the aggregate rows are written, one Parquet file per day
(``<path>/YYYY-MM-DD.parquet``).

Window. The value stamped at instant ``c`` covers the entity's events with event time ``t`` in
``[c - w, c)`` and, for a field with a label lag ``L``, also ``t + L < c``: only values known strictly
before ``c``. ``L`` is an availability delay (a label or outcome known ``L`` after its event), so such an
event enters the window at ``t + L + 1us`` and leaves it, as any event, at ``t + w + 1us``. ``L`` must
be smaller than ``w`` (otherwise the field is always empty and the definition is rejected).

Functions (SQL's null semantics: nulls of ``column`` are skipped, never read as 0):

* ``count``: without ``column``, the number of events; with ``column``, its non-null values. Never null.
* ``sum``: sum of the non-null values; null when there are none (SQL ``SUM``).
* ``mean``: ``sum / count`` of the non-null values; null when there are none.
* ``std``: sample standard deviation (``ddof=1``) of the non-null values; null with fewer than two.
* ``min``, ``max``: of the non-null values; null when there are none.
* ``last``: the non-null value with the latest event time; among several at that same time, the
  greatest (so the result never depends on row order); null when there are none.
* ``distinct_count``: number of distinct non-null values (any hashable type; the other functions but
  ``count`` need a numeric column). Never null.

``count`` and ``distinct_count`` are ``int64`` columns, the others ``float64``; ``sum``, ``mean`` and
``std`` come from running sums and are rounded to 6 decimals, the others are exact.

Rows are *change points*: for every event at ``t`` an entity gets a row at ``t + L + 1us`` for each
label lag ``L`` used by the view (``0`` for fields without one: the event enters those windows) and
one at ``t + w + 1us`` for each window ``w`` (it leaves), plus one at the start of the built range for
every entity with events in the range or its look-back. Between two change points the true values do
not change, so Feast's as-of join (latest row ``<=`` the label time) returns the exact window
aggregates over events known strictly before each label, never the labelled event itself, and the
online store's latest row is exact too (windows decay without new events).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import FeatureDefinitionError, MlopsError
from mlops_provider.partitions import day_bounds

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SOURCE_TAG = "mlops.aggregate.source"
KEY_TAG = "mlops.aggregate.key"
TIMESTAMP_TAG = "mlops.aggregate.timestamp"
FUNCTIONS = ("count", "sum", "mean", "std", "min", "max", "last", "distinct_count")
#: Functions whose result is an integer count (never null).
COUNT_FUNCTIONS = ("count", "distinct_count")
_WINDOW = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_US = 1_000_000


@dataclass(frozen=True)
class AggregateField:
    """One windowed aggregate column.

    :param name: output column (the Feast field).
    :param function: one of :data:`FUNCTIONS`.
    :param window: events with event time in ``[c - window, c)`` count at instant ``c``.
    :param column: source column aggregated (optional for ``count`` only).
    :param label_lag: availability delay: an event at ``t`` counts only from ``t + label_lag + 1us``.
    """

    name: str
    function: str
    window: timedelta
    column: str | None = None
    label_lag: timedelta = timedelta(0)


@dataclass(frozen=True)
class AggregateSpec:
    """Everything needed to build one feature view's aggregate rows."""

    view: str
    source_dataset: str
    key: str
    timestamp: str
    path: str
    fields: tuple[AggregateField, ...]

    @property
    def max_window(self) -> timedelta:
        """Longest window: how far back source data is needed."""
        return max(f.window for f in self.fields)

    @property
    def columns(self) -> list[str]:
        """Source columns the aggregates read."""
        return sorted({f.column for f in self.fields if f.column})

    def file_uri(self, day: date) -> str:
        """URI of the aggregate file of ``day`` (local paths become ``file://`` URIs)."""
        base = self.path if "://" in self.path else f"file://{self.path}"
        return f"{base.rstrip('/')}/{day:%Y-%m-%d}.parquet"


def _duration(text: str, where: str, what: str = "window") -> timedelta:
    match = _WINDOW.match(str(text).strip())
    if not match:
        raise FeatureDefinitionError(f"{where}: {what} {text!r} is not a duration like '1h', '1d' or '7d'.")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def spec_from_view(view: Any) -> AggregateSpec | None:
    """Build the spec of a Feast ``FeatureView``, or ``None`` when the view is not tagged as an aggregate."""
    tags = view.tags or {}
    if SOURCE_TAG not in tags:
        return None
    key = tags.get(KEY_TAG) or (view.join_keys[0] if getattr(view, "join_keys", None) else None)
    if not key:
        raise FeatureDefinitionError(f"Feature view {view.name}: set tag {KEY_TAG} to the entity's join key column.")
    fields = []
    for feature in view.features:
        ftags = feature.tags or {}
        where = f"Feature view {view.name}, field {feature.name}"
        function = ftags.get("aggregation")
        if function not in FUNCTIONS:
            raise FeatureDefinitionError(f"{where}: tag 'aggregation' must be one of {FUNCTIONS}, got {function!r}.")
        column = ftags.get("column")
        if function != "count" and not column:
            raise FeatureDefinitionError(f"{where}: a {function} needs tag 'column' naming the source column.")
        window = _duration(ftags.get("window", ""), where)
        if window <= timedelta(0):
            raise FeatureDefinitionError(f"{where}: window {ftags.get('window')!r} must be longer than zero.")
        lag = _duration(ftags.get("label_lag", "0s"), where, "label_lag")
        if lag >= window:
            raise FeatureDefinitionError(
                f"{where}: label_lag {ftags.get('label_lag')!r} must be shorter than window {ftags.get('window')!r}; "
                "an event known only after it has left the window never counts, so the field would always be empty."
            )
        fields.append(AggregateField(feature.name, function, window, column, lag))
    if not fields:
        raise FeatureDefinitionError(f"Feature view {view.name} is tagged as an aggregate but has no features.")
    return AggregateSpec(
        view=view.name,
        source_dataset=tags[SOURCE_TAG],
        key=key,
        timestamp=tags.get(TIMESTAMP_TAG, view.batch_source.timestamp_field or "event_timestamp"),
        path=view.batch_source.path,
        fields=tuple(fields),
    )


def _us(delta: timedelta) -> int:
    return int(delta / timedelta(microseconds=1))


def _empty_rows(spec: AggregateSpec) -> pd.DataFrame:
    import pandas as pd

    columns: dict[str, Any] = {
        spec.key: pd.Series(dtype="int64"),
        spec.timestamp: pd.Series(dtype="datetime64[us, UTC]"),
    }
    for f in spec.fields:
        columns[f.name] = pd.Series(dtype="int64" if f.function in COUNT_FUNCTIONS else "float64")
    return pd.DataFrame(columns)


def _range_extreme(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, reduce: Any) -> np.ndarray:
    """``reduce`` (``np.fmin`` or ``np.fmax``) of the non-NaN ``values[lo:hi]`` per query; NaN when none.

    A sparse table built one level at a time: level ``k`` holds the reduction of ``values[i:i + 2**k]``,
    and a range of length ``n`` is the reduction of two overlapping blocks of ``2**floor(log2(n))``.
    Only one level is kept in memory; levels stop at the longest range asked for.
    """
    import numpy as np

    out = np.full(len(lo), np.nan)
    length = hi - lo
    nonempty = length > 0
    if not nonempty.any():
        return out
    level = np.zeros(len(lo), dtype="int64")
    level[nonempty] = np.floor(np.log2(length[nonempty])).astype("int64")
    # Guard the float log2 against rounding: 2**level <= length < 2**(level + 1).
    level -= nonempty & ((np.int64(1) << level) > length)
    level += nonempty & ((np.int64(1) << (level + 1)) <= length)
    table = values
    top = int(level[nonempty].max())
    for k in range(top + 1):
        sel = np.flatnonzero(nonempty & (level == k))
        if len(sel):
            out[sel] = reduce(table[lo[sel]], table[hi[sel] - (1 << k)])
        if k < top:
            table = reduce(table[: -(1 << k)], table[1 << k :])
    return out


def _range_last(values: np.ndarray, codes: np.ndarray, ts: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Latest non-NaN value of ``values[lo:hi]`` (rows sorted by entity then time); ties: the greatest."""
    import numpy as np

    n = len(values)
    position = np.where(np.isnan(values), -1, np.arange(n))
    latest = np.maximum.accumulate(position)  # last non-null row at or before each row
    j = np.where(hi > 0, latest[np.maximum(hi - 1, 0)], -1)
    found = (hi > lo) & (j >= lo)
    # Rows of one entity at one instant are all inside a window or all outside it: take their greatest value.
    new_run = np.concatenate(([True], (codes[1:] != codes[:-1]) | (ts[1:] != ts[:-1])))
    run_best = np.fmax.reduceat(values, np.flatnonzero(new_run))
    best = run_best[np.cumsum(new_run) - 1]
    out = np.full(len(lo), np.nan)
    out[found] = best[j[found]]
    return out


def _range_distinct(value_codes: np.ndarray, codes: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Number of distinct non-null values (``value_codes >= 0``) in ``value_codes[lo:hi]`` per query.

    A row counts when the previous row of its entity with the same value lies before ``lo``. With
    ``F(h, l)`` = rows before ``h`` whose previous occurrence is before ``l``, the answer is
    ``F(hi, lo) - F(lo, lo)`` and ``F(lo, lo)`` is the number of non-null rows before ``lo``.
    ``F`` is answered offline: ``[0, h)`` splits into aligned blocks of ``2**k`` rows (one per set bit of
    ``h``); per level ``k``, the rows sorted by (block, previous occurrence) answer every query's block by
    one binary search. ``O((rows + queries) log rows)``, no Python loop over rows or queries.
    """
    import numpy as np

    n = len(value_codes)
    valid = value_codes >= 0
    order = np.lexsort((np.arange(n), value_codes, codes))
    same = (codes[order][1:] == codes[order][:-1]) & (value_codes[order][1:] == value_codes[order][:-1])
    previous = np.full(n, -1, dtype="int64")
    previous[order[1:][same]] = order[:-1][same]
    # prev + 1 in [0, n]; null rows get n + 1, beyond every bound, so they are never counted.
    shifted = np.where(valid, previous + 1, n + 1).astype("int64")
    span = n + 2
    positions = np.arange(n, dtype="int64")
    counted = np.zeros(len(lo), dtype="int64")
    k = 0
    while (1 << k) <= n:
        has = np.flatnonzero((hi >> k) & 1)
        if len(has):
            keys = np.sort((positions >> k) * span + shifted)
            block = (hi[has] >> k) - 1
            counted[has] += np.searchsorted(keys, block * span + lo[has] + 1, side="left") - (block << k)
        k += 1
    non_null_before = np.concatenate(([0], np.cumsum(valid)))
    return counted - non_null_before[lo]


def compute_change_points(events: pd.DataFrame, spec: AggregateSpec, start: datetime, end: datetime) -> pd.DataFrame:
    """Return the aggregate rows of ``spec`` stamped in ``[start, end)``.

    ``events`` must cover ``[start - max_window, end)`` (earlier events cannot affect these rows).
    Vectorised: one sort, then per field cumulative sums (count, sum, mean, std), a sparse table
    (min, max), a running last-valid index (last) or per-level binary searches (distinct_count); no
    Python loop over entities, events or rows.

    :param events: source rows with the key, timestamp and aggregated columns.
    :param spec: the aggregate spec.
    :param start: first instant (inclusive, tz-aware UTC).
    :param end: last instant (exclusive).
    """
    import numpy as np
    import pandas as pd

    ts_name = spec.timestamp
    start_us = int(pd.Timestamp(start).value // 1000)
    end_us = int(pd.Timestamp(end).value // 1000)
    events = events[events[spec.key].notna() & events[ts_name].notna()]
    if events.empty:
        return _empty_rows(spec)

    ts = pd.to_datetime(events[ts_name], utc=True).to_numpy(dtype="datetime64[us]").astype("int64")
    keys = events[spec.key].to_numpy()
    codes, uniques = pd.factorize(keys, sort=True)
    # Stable: rows of one entity at one instant keep their input order (no result depends on it).
    order = np.lexsort((ts, codes))
    codes, ts = codes[order].astype("int64"), ts[order]

    windows = sorted({_us(f.window) for f in spec.fields})
    lags = sorted({_us(f.label_lag) for f in spec.fields})
    # Every instant searched (candidates, minus a window or lag) stays inside its entity's stretch of the
    # composite index: base lies below the earliest of them, stride above the latest.
    base = min(int(ts.min()), start_us) - windows[-1] - 2
    stride = max(int(ts.max()) + windows[-1], end_us) + 4 - base
    if (len(uniques) + 1) * stride >= 2**62:
        raise MlopsError(f"{spec.view}: too many entities x time span for the composite index; split the interval.")
    composite = codes * stride + (ts - base)

    # Candidate instants: entry (t + lag + 1us, per label lag) and, per window, exit (t + w + 1us); plus a
    # baseline row at ``start`` for every entity, so an entity's state is known from the first instant.
    all_codes = np.arange(len(uniques), dtype="int64")
    steps = sorted({lag + 1 for lag in lags} | {w + 1 for w in windows})
    cand_code = np.concatenate([codes] * len(steps) + [all_codes])
    cand_ts = np.concatenate([ts + step for step in steps] + [np.full(len(all_codes), start_us)])
    inside = (cand_ts >= start_us) & (cand_ts < end_us)
    cand_code, cand_ts = cand_code[inside], cand_ts[inside]
    # Sort-based dedupe (far faster than np.unique's hashing on millions of int64).
    cand = np.sort(cand_code * stride + (cand_ts - base), kind="stable")
    if len(cand):
        cand = cand[np.concatenate(([True], cand[1:] != cand[:-1]))]
    cand_code, cand_rel = cand // stride, cand % stride

    # Binary searches with sorted queries (cache-friendly); permute to time order at the end.
    highs = {lag: np.searchsorted(composite, cand - lag, side="left") for lag in lags}  # t < c - lag
    lows = {w: np.searchsorted(composite, cand - w, side="left") for w in windows}  # t >= c - w

    def column(name: str) -> pd.Series:
        return events[name].iloc[order]

    numeric: dict[str, np.ndarray] = {}

    def values_of(name: str) -> np.ndarray:
        if name not in numeric:
            numeric[name] = pd.to_numeric(column(name)).to_numpy(dtype="float64", na_value=np.nan)
        return numeric[name]

    non_null: dict[str, np.ndarray] = {}

    def non_null_prefix(name: str) -> np.ndarray:
        if name not in non_null:
            non_null[name] = np.concatenate(([0], np.cumsum(column(name).notna().to_numpy())))
        return non_null[name]

    by_time = np.argsort(cand_rel, kind="stable")
    result: dict[str, Any] = {
        spec.key: uniques[cand_code[by_time]],
        ts_name: pd.DatetimeIndex((cand_rel[by_time] + base).astype("datetime64[us]")).tz_localize("UTC"),
    }
    for f in spec.fields:
        lo, hi = lows[_us(f.window)], highs[_us(f.label_lag)]
        if f.column is None:
            if f.function != "count":  # spec_from_view rejects this; guards specs built by hand
                raise MlopsError(f"Aggregate {f.name!r} ({f.function}) needs a column.")
            result[f.name] = (hi - lo).astype("int64")[by_time]
            continue
        if f.function == "distinct_count":
            value_codes, _ = pd.factorize(column(f.column))
            result[f.name] = _range_distinct(value_codes.astype("int64"), codes, lo, hi)[by_time]
            continue
        count = non_null_prefix(f.column)[hi] - non_null_prefix(f.column)[lo]
        if f.function == "count":
            result[f.name] = count.astype("int64")[by_time]
            continue
        values = values_of(f.column)
        value: np.ndarray
        if f.function in ("sum", "mean"):
            running = np.concatenate(([0.0], np.cumsum(np.nan_to_num(values, nan=0.0))))
            total = running[hi] - running[lo]
            value = total if f.function == "sum" else np.divide(total, count, out=np.zeros_like(total), where=count > 0)
            value = np.where(count > 0, np.round(value, 6), np.nan)
        elif f.function == "std":
            # Centred on the entity's mean, so the sums of squares do not cancel catastrophically.
            valid = ~np.isnan(values)
            per_entity = np.bincount(codes, weights=np.where(valid, values, 0.0), minlength=len(uniques))
            n_entity = np.bincount(codes, weights=valid, minlength=len(uniques))
            centre = np.divide(per_entity, n_entity, out=np.zeros_like(per_entity), where=n_entity > 0)
            centred = np.where(valid, values - centre[codes], 0.0)
            s1 = np.concatenate(([0.0], np.cumsum(centred)))
            s2 = np.concatenate(([0.0], np.cumsum(centred * centred)))
            sum1, sum2 = s1[hi] - s1[lo], s2[hi] - s2[lo]
            enough = count >= 2
            safe = np.where(enough, count, 2)
            variance = np.maximum((sum2 - sum1 * sum1 / safe) / (safe - 1), 0.0)
            value = np.where(enough, np.round(np.sqrt(variance), 6), np.nan)
        elif f.function in ("min", "max"):
            value = _range_extreme(values, lo, hi, np.fmin if f.function == "min" else np.fmax)
        elif f.function == "last":
            value = _range_last(values, codes, ts, lo, hi)
        else:
            raise MlopsError(f"Aggregate {f.name!r}: unknown function {f.function!r}; use one of {FUNCTIONS}.")
        result[f.name] = value[by_time]
    return pd.DataFrame(result)


#: Source events per pass of :func:`compute_change_points` in :func:`build_partitions`. A pass's working memory is
#: about 150 bytes per event; larger intervals are built in passes over disjoint ranges of entities.
PASS_EVENTS = 2_000_000


def _entity_passes(keys: pd.Series, pass_events: int) -> list[np.ndarray]:
    """Row indices of each pass: consecutive ranges of the sorted entity keys, about ``pass_events`` rows each."""
    import numpy as np
    import pandas as pd

    if len(keys) <= pass_events:
        return [np.arange(len(keys))]
    codes, uniques = pd.factorize(keys, sort=True)
    per_entity = np.bincount(codes[codes >= 0], minlength=len(uniques))
    # Entity e goes to pass floor(events before e / pass_events): an entity is never split across passes.
    first_row = np.concatenate(([0], np.cumsum(per_entity)[:-1]))
    pass_of_entity = first_row // pass_events
    pass_of_row = np.where(codes >= 0, pass_of_entity[np.maximum(codes, 0)], 0)
    order = np.argsort(pass_of_row, kind="stable")
    bounds = np.searchsorted(pass_of_row[order], np.arange(int(pass_of_row.max()) + 2))
    return [order[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def build_partitions(
    spec: AggregateSpec,
    days: list[date],
    read_source_day: Any,
    write_day: Any,
    *,
    pass_events: int = PASS_EVENTS,
) -> list[dict[str, Any]]:
    """Build and write the aggregate file of every day in ``days``.

    Up to ``pass_events`` source events are computed in one pass; beyond that the entities are split into
    consecutive key ranges of about ``pass_events`` events, each range's rows go to a scratch Parquet file per
    day, and each day's file is then assembled in the one-pass order (time, then key), so working memory is
    one pass plus one day's rows. Sums, means and standard deviations come from running sums over a pass, so
    they may differ from a one-pass build in the last bits before their 6-decimal rounding.

    :param spec: the aggregate spec.
    :param days: days to build (consecutive).
    :param read_source_day: ``callable(date) -> DataFrame | None``: the source rows of one day (``None`` when
        the partition does not exist; allowed only in the look-back before the first day).
    :param write_day: ``callable(date, DataFrame) -> str``: writes one day's rows, returns its URI.
    :param pass_events: source events per pass.
    :return: ``[{"date", "uri", "rows"}]`` per day.
    """
    import tempfile

    import pandas as pd

    first, last = min(days), max(days)
    lookback_days = spec.max_window.days + (1 if spec.max_window % timedelta(days=1) else 0) + 1
    needed = [first - timedelta(days=i) for i in range(lookback_days, 0, -1)] + [
        first + timedelta(days=i) for i in range((last - first).days + 1)
    ]
    frames = []
    cols = [spec.key, spec.timestamp, *spec.columns]
    for day in needed:
        frame = read_source_day(day)
        if frame is None:
            if day >= first:
                raise MlopsError(
                    f"{spec.view}: the validated {spec.source_dataset} partition dt={day} does not exist; "
                    "validate that day before building its features."
                )
            continue
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise FeatureDefinitionError(
                f"{spec.view}: columns {missing} are not in the {spec.source_dataset} data (tags of the view)."
            )
        frames.append(frame[cols])
    events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    del frames
    start, end = day_bounds(first)[0], day_bounds(last)[1]
    passes = _entity_passes(events[spec.key], pass_events)
    if len(passes) == 1:
        rows = compute_change_points(events, spec, start, end)
        del events
        return [
            {"date": day.isoformat(), "uri": write_day(day, part), "rows": len(part)}
            for day, part in _split_by_day(rows, spec, days)
        ]
    with tempfile.TemporaryDirectory(prefix="mlops-aggregates-") as scratch:
        empty = None
        for number, index in enumerate(passes):
            rows = compute_change_points(events.iloc[index], spec, start, end)
            empty = rows.iloc[:0] if empty is None else empty
            for day, part in _split_by_day(rows, spec, days):
                if len(part):
                    part.to_parquet(f"{scratch}/{day}-{number:06d}.parquet", index=False)
            del rows
        del events
        written = []
        for day in sorted(days):
            pieces = [
                pd.read_parquet(f"{scratch}/{day}-{number:06d}.parquet")
                for number in range(len(passes))
                if os.path.exists(f"{scratch}/{day}-{number:06d}.parquet")
            ]
            # Passes hold ascending key ranges and each is in (time, key) order: a stable sort by time alone
            # gives the one-pass order.
            part = pd.concat(pieces, ignore_index=True) if pieces else empty
            assert part is not None  # every pass computed a frame, empty or not
            part = part.sort_values(spec.timestamp, kind="stable", ignore_index=True)
            written.append({"date": day.isoformat(), "uri": write_day(day, part), "rows": len(part)})
            del pieces, part
    return written


def _split_by_day(rows: pd.DataFrame, spec: AggregateSpec, days: list[date]) -> Iterator[tuple[date, pd.DataFrame]]:
    """The rows (in time order) of each day of ``days``."""
    import pandas as pd

    stamps = rows[spec.timestamp].to_numpy(dtype="datetime64[us]")
    for day in sorted(days):
        lo, hi = day_bounds(day)
        lo_i, hi_i = (
            stamps.searchsorted(pd.Timestamp(lo).to_datetime64()),
            stamps.searchsorted(pd.Timestamp(hi).to_datetime64()),
        )
        yield day, rows.iloc[lo_i:hi_i].reset_index(drop=True)
