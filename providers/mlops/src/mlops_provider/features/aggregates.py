"""Point-in-time windowed aggregates per entity, declared on Feast feature views and built from a data zone.

A feature view opts in with tags::

    tags={"mlops.aggregate.source": "<dataset>",       # dataset in the validated zone
          "mlops.aggregate.key": "<entity_key>",        # entity join key (a column of the dataset)
          "mlops.aggregate.timestamp": "<event_time>"}  # event time column

and each aggregate field carries ``tags={"aggregation": "count"|"sum"|"mean", "column": "<value_column>",
"window": "7d"}``. The view's ``FileSource`` path is where the aggregate rows are written, one Parquet
file per day (``<path>/YYYY-MM-DD.parquet``).

Rows are *change points*: for every event at ``t`` an entity gets a row at ``t + 1us`` (the event
enters its windows) and one at ``t + w + 1us`` for each window ``w`` (it leaves), plus one at the start
of the built range for every entity with events in the range or its look-back. A row stamped ``c``
holds the aggregates over the entity's events in ``[c - w, c)``: strictly before ``c``. Between two
change points the true values do not change, so Feast's as-of join (latest row ``<=`` the label
time) returns the exact window aggregates over events strictly before each label, never the labelled
event itself, and the online store's latest row is exact too (windows decay without new events).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import MlopsError
from mlops_provider.partitions import day_bounds

if TYPE_CHECKING:
    import pandas as pd

SOURCE_TAG = "mlops.aggregate.source"
KEY_TAG = "mlops.aggregate.key"
TIMESTAMP_TAG = "mlops.aggregate.timestamp"
FUNCTIONS = ("count", "sum", "mean")
_WINDOW = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_US = 1_000_000


class FeatureDefinitionError(MlopsError):
    """A feature view's aggregate tags are incomplete or invalid; the message names the view and field."""


@dataclass(frozen=True)
class AggregateField:
    """One windowed aggregate column."""

    name: str
    function: str
    window: timedelta
    column: str | None = None


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


def _window(text: str, where: str) -> timedelta:
    match = _WINDOW.match(str(text).strip())
    if not match:
        raise FeatureDefinitionError(f"{where}: window {text!r} is not like '1h', '1d' or '7d'.")
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
        fields.append(AggregateField(feature.name, function, _window(ftags.get("window", ""), where), column))
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


def compute_change_points(events: pd.DataFrame, spec: AggregateSpec, start: datetime, end: datetime) -> pd.DataFrame:
    """Return the aggregate rows of ``spec`` stamped in ``[start, end)``.

    ``events`` must cover ``[start - max_window, end)`` (earlier events cannot affect these rows).
    Vectorised: one sort, cumulative sums and binary searches, no per-entity Python loop.

    :param events: source rows with the key, timestamp and aggregated columns.
    :param spec: the aggregate spec.
    :param start: first instant (inclusive, tz-aware UTC).
    :param end: last instant (exclusive).
    """
    import numpy as np
    import pandas as pd

    ts_name = spec.timestamp
    out_cols = [spec.key, ts_name] + [f.name for f in spec.fields]
    start_us = int(pd.Timestamp(start).value // 1000)
    end_us = int(pd.Timestamp(end).value // 1000)
    events = events[events[spec.key].notna() & events[ts_name].notna()]
    if events.empty:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in out_cols})
        empty[spec.key] = empty[spec.key].astype("int64")
        empty[ts_name] = pd.Series(dtype="datetime64[us, UTC]")
        for f in spec.fields:
            empty[f.name] = empty[f.name].astype("int64" if f.function == "count" else "float64")
        return empty

    ts = pd.to_datetime(events[ts_name], utc=True).to_numpy(dtype="datetime64[us]").astype("int64")
    keys = events[spec.key].to_numpy()
    codes, uniques = pd.factorize(keys, sort=True)
    order = np.lexsort((ts, codes))
    codes, ts = codes[order].astype("int64"), ts[order]
    values = {c: events[c].to_numpy(dtype="float64")[order] for c in spec.columns}

    windows = sorted({int(f.window.total_seconds() * _US) for f in spec.fields})
    base = int(ts.min()) - windows[-1] - 2
    stride = int(ts.max()) + windows[-1] + 4 - base
    if (len(uniques) + 1) * stride >= 2**62:
        raise MlopsError(f"{spec.view}: too many entities x time span for the composite index; split the interval.")
    composite = codes * stride + (ts - base)

    # Candidate instants: entry (t + 1us) and, per window, exit (t + w + 1us); plus a baseline row at
    # ``start`` for every entity, so an entity's state is known from the first instant of the range.
    all_codes = np.arange(len(uniques), dtype="int64")
    cand_code = np.concatenate([codes] * (1 + len(windows)) + [all_codes])
    cand_ts = np.concatenate([ts + 1] + [ts + w + 1 for w in windows] + [np.full(len(all_codes), start_us)])
    inside = (cand_ts >= start_us) & (cand_ts < end_us)
    cand_code, cand_ts = cand_code[inside], cand_ts[inside]
    # Sort-based dedupe (far faster than np.unique's hashing on millions of int64).
    cand = np.sort(cand_code * stride + (cand_ts - base), kind="stable")
    if len(cand):
        cand = cand[np.concatenate(([True], cand[1:] != cand[:-1]))]
    cand_code, cand_rel = cand // stride, cand % stride

    csum = {c: np.concatenate([[0.0], np.cumsum(np.nan_to_num(v))]) for c, v in values.items()}
    # Binary searches with sorted queries (cache-friendly); permute to time order at the end.
    hi = np.searchsorted(composite, cand, side="left")  # events strictly before the instant
    lows = {w: np.searchsorted(composite, cand - w, side="left") for w in windows}  # events at or after instant - w
    # Output in time order (then entity): candidates are sorted by entity, so a stable sort on time suffices.
    by_time = np.argsort(cand_rel, kind="stable")
    result: dict[str, Any] = {
        spec.key: uniques[cand_code[by_time]],
        ts_name: pd.DatetimeIndex((cand_rel[by_time] + base).astype("datetime64[us]")).tz_localize("UTC"),
    }
    for f in spec.fields:
        lo = lows[int(f.window.total_seconds() * _US)]
        count = hi - lo
        if f.function == "count":
            result[f.name] = count.astype("int64")[by_time]
            continue
        if f.column is None:  # spec_from_view rejects this; guards specs built by hand
            raise MlopsError(f"Aggregate {f.name!r} ({f.function}) needs a column.")
        total = csum[f.column][hi] - csum[f.column][lo]
        if f.function == "sum":
            value = np.round(total, 6)
        else:
            value = np.round(np.divide(total, count, out=np.zeros_like(total), where=count > 0), 6)
        result[f.name] = value[by_time]
    return pd.DataFrame(result)


def build_partitions(
    spec: AggregateSpec,
    days: list[date],
    read_source_day: Any,
    write_day: Any,
) -> list[dict[str, Any]]:
    """Build and write the aggregate file of every day in ``days``.

    :param spec: the aggregate spec.
    :param days: days to build (consecutive).
    :param read_source_day: ``callable(date) -> DataFrame | None``: the source rows of one day (``None`` when
        the partition does not exist; allowed only in the look-back before the first day).
    :param write_day: ``callable(date, DataFrame) -> str``: writes one day's rows, returns its URI.
    :return: ``[{"date", "uri", "rows"}]`` per day.
    """
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
    # One pass over the whole interval, then one file per day.
    rows = compute_change_points(events, spec, day_bounds(first)[0], day_bounds(last)[1])
    stamps = rows[spec.timestamp].to_numpy(dtype="datetime64[us]")
    written = []
    for day in sorted(days):
        lo, hi = day_bounds(day)
        lo_i, hi_i = (
            stamps.searchsorted(pd.Timestamp(lo).to_datetime64()),
            stamps.searchsorted(pd.Timestamp(hi).to_datetime64()),
        )
        part = rows.iloc[lo_i:hi_i].reset_index(drop=True)
        written.append({"date": day.isoformat(), "uri": write_day(day, part), "rows": len(part)})
    return written
