"""A Feast offline store for Parquet file sources with a vectorised as-of join.

Feast's ``file`` (Dask) offline store joins each label with *every* feature row of its entity and
then filters, which is quadratic in an entity's history and drops labels whose entity has feature
rows only after the label's time (an entity's first event). This store keeps Feast's API and file
sources but:

* ``get_historical_features`` reads only the needed columns and time range (Arrow filters) and joins
  with ``pandas.merge_asof`` (latest feature row at or before each label, within the view's TTL),
  keeping every label row;
* ``pull_latest_from_table_or_query`` and ``pull_all_from_table_or_query`` (what materialization
  reads) use Arrow column projection and time filters instead of Dask.

Everything else (logging, monitoring, non-entity retrieval) is Feast's Dask store. ``FeastHook`` selects this
store for ``offline_store: {type: file}``; set ``type: dask`` to force Feast's own implementation.

This module is imported by Feast's configuration loader only, never while parsing DAGs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd  # noqa: TID253 - leaf module loaded by Feast at run time
import pyarrow as pa  # noqa: TID253
import pyarrow.dataset as pads  # noqa: TID253
from feast.infra.offline_stores.dask import (  # noqa: TID253
    DaskOfflineStore,
    DaskOfflineStoreConfig,
    DaskRetrievalJob,
)
from feast.infra.offline_stores.file_source import FileSource  # noqa: TID253
from feast.infra.offline_stores.offline_store import RetrievalMetadata  # noqa: TID253
from feast.on_demand_feature_view import OnDemandFeatureView  # noqa: TID253

STORE_TYPE = "mlops_provider.features.offline_store.AsOfFileOfflineStore"
_ENTITY_TS = "event_timestamp"
_FEATURE_TS = "__feature_ts"
_ROW = "__row"


class _Computed:
    """An already computed frame, in the shape ``DaskRetrievalJob`` expects (``.compute()``).

    Wrapping a pandas frame in a Dask collection would make Dask hash every row to name it; the
    frames here are computed eagerly anyway.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def compute(self) -> pd.DataFrame:
        return self.frame


class AsOfFileOfflineStoreConfig(DaskOfflineStoreConfig):
    """Configuration of :class:`AsOfFileOfflineStore` (no options)."""

    type: Literal["mlops_provider.features.offline_store.AsOfFileOfflineStore"] = STORE_TYPE  # type: ignore[assignment]


#: ``{FileSource path: folder}`` to read instead, for the current context only (see :func:`redirected_sources`).
_REDIRECTS: ContextVar[dict[str, str]] = ContextVar("mlops_feature_source_redirects", default={})  # noqa: B039


@contextmanager
def redirected_sources(redirects: dict[str, str]) -> Iterator[None]:
    """Read the feature files of the sources ``redirects`` names from other folders while the block runs.

    How a reproduction joins features it rebuilt from recorded partition versions into a scratch folder,
    without touching the files the feature views name (other runs read and materialize those).
    """
    token = _REDIRECTS.set({**_REDIRECTS.get(), **redirects})
    try:
        yield
    finally:
        _REDIRECTS.reset(token)


def _dataset(config: Any, source: FileSource) -> pads.Dataset:
    path = FileSource.get_uri_for_file_path(config.repo_path, _REDIRECTS.get().get(source.path, source.path))
    filesystem, resolved = FileSource.create_filesystem_and_path(path, source.file_options.s3_endpoint_override)
    return pads.dataset(resolved, filesystem=filesystem, format="parquet", exclude_invalid_files=False)


def _ts_scalar(value: datetime | pd.Timestamp, column_type: pa.DataType) -> pa.Scalar:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if pa.types.is_timestamp(column_type) and column_type.tz is None:
        stamp = stamp.tz_localize(None)
    return pa.scalar(stamp, type=column_type)


def _read(
    config: Any,
    source: FileSource,
    columns: list[str],
    timestamp_field: str,
    start: datetime | None,
    end: datetime | None,
) -> pd.DataFrame:
    """Read ``columns`` of the rows with ``start <= timestamp <= end`` (either bound optional)."""
    dataset = _dataset(config, source)
    ts_type = dataset.schema.field(timestamp_field).type
    condition = None
    if start is not None:
        condition = pads.field(timestamp_field) >= _ts_scalar(start, ts_type)
    if end is not None:
        upper = pads.field(timestamp_field) <= _ts_scalar(end, ts_type)
        condition = upper if condition is None else condition & upper
    frame = dataset.to_table(columns=columns, filter=condition).to_pandas()
    column = frame[timestamp_field]
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert("UTC")
    else:
        column = pd.to_datetime(column, utc=True, cache=False)
    frame[timestamp_field] = column.astype("datetime64[ns, UTC]")
    return frame


def _time_ordered(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Sort by ``columns`` unless already ordered (daily files usually are)."""
    if len(columns) == 1 and frame[columns[0]].is_monotonic_increasing:
        return frame
    return frame.sort_values(columns, kind="stable")


class AsOfFileOfflineStore(DaskOfflineStore):
    """Feast's file offline store with a fast, row-preserving point-in-time join."""

    @staticmethod
    def get_historical_features(
        config: Any,
        feature_views: list[Any],
        feature_refs: list[str],
        entity_df: Any,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> Any:
        """As-of join of ``entity_df`` with the requested features; see the module docstring."""
        if not isinstance(entity_df, pd.DataFrame):
            return DaskOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
                **kwargs,
            )
        ts_col = _ENTITY_TS
        if ts_col not in entity_df.columns:
            candidates = list(entity_df.select_dtypes(include=["datetime", "datetimetz"]).columns)
            if len(candidates) != 1:
                raise ValueError(f"Provide an entity_df with a column named {_ENTITY_TS} holding the time of events.")
            ts_col = candidates[0]
        requested: dict[str, list[str]] = {}
        for ref in feature_refs:
            view, feature = ref.split(":", 1)
            requested.setdefault(view, []).append(feature)
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        timestamps = pd.to_datetime(entity_df[ts_col], utc=True)
        lo, hi = timestamps.min(), timestamps.max()

        def evaluate() -> Any:
            frame = entity_df.copy()
            frame[ts_col] = pd.to_datetime(frame[ts_col], utc=True).astype("datetime64[ns, UTC]")
            frame[_ROW] = range(len(frame))
            frame = frame.sort_values(ts_col, kind="stable")
            for fv in feature_views:
                name = fv.projection.name_to_use()
                features = requested.get(name) or requested.get(fv.name)
                if not features:
                    continue
                source = fv.batch_source
                timestamp_field = source.timestamp_field
                source_keys = [c.name for c in fv.entity_columns]
                join_keys = [fv.projection.join_key_map.get(k, k) for k in source_keys]
                ttl = fv.ttl if fv.ttl and fv.ttl > timedelta(0) else None
                rows = _read(
                    config,
                    source,
                    [*source_keys, timestamp_field, *features],
                    timestamp_field,
                    (lo - ttl) if ttl else None,
                    hi,
                )
                rows = rows.rename(
                    columns={**dict(zip(source_keys, join_keys, strict=True)), timestamp_field: _FEATURE_TS}
                )
                if full_feature_names:
                    rows = rows.rename(columns={f: f"{name}__{f}" for f in features})
                for key in join_keys:
                    if key in frame.columns and rows[key].dtype != frame[key].dtype:
                        rows[key] = rows[key].astype(frame[key].dtype)
                rows = rows.sort_values(_FEATURE_TS, kind="stable")
                frame = pd.merge_asof(
                    frame,
                    rows,
                    left_on=ts_col,
                    right_on=_FEATURE_TS,
                    by=join_keys,
                    direction="backward",
                    allow_exact_matches=True,
                    tolerance=ttl,
                ).drop(columns=[_FEATURE_TS])
            frame = frame.sort_values(_ROW, kind="stable").drop(columns=[_ROW]).reset_index(drop=True)
            return _Computed(frame)

        return DaskRetrievalJob(
            evaluation_function=evaluate,
            full_feature_names=full_feature_names,
            repo_path=str(config.repo_path),
            on_demand_feature_views=odfvs,
            metadata=RetrievalMetadata(
                features=feature_refs,
                keys=[c for c in entity_df.columns if c != ts_col],
                min_event_timestamp=lo.to_pydatetime(),
                max_event_timestamp=hi.to_pydatetime(),
            ),
        )

    @staticmethod
    def pull_latest_from_table_or_query(
        config: Any,
        data_source: Any,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> Any:
        """Latest row per entity in ``[start_date, end_date]`` (what materialization writes online)."""

        def evaluate() -> Any:
            ts_columns = [timestamp_field] + ([created_timestamp_column] if created_timestamp_column else [])
            frame = _read(
                config,
                data_source,
                [*join_key_columns, *feature_name_columns, *ts_columns],
                timestamp_field,
                start_date,
                end_date,
            )
            frame = _time_ordered(frame, ts_columns)
            if join_key_columns:
                frame = frame.drop_duplicates(join_key_columns, keep="last", ignore_index=True)
            return _Computed(frame.reset_index(drop=True))

        return DaskRetrievalJob(evaluation_function=evaluate, full_feature_names=False, repo_path=str(config.repo_path))

    @staticmethod
    def pull_all_from_table_or_query(
        config: Any,
        data_source: Any,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> Any:
        """Every row in ``[start_date, end_date]``, time-ordered (Feast's local engine materializes from this)."""
        if not join_key_columns:
            return DaskOfflineStore.pull_all_from_table_or_query(
                config,
                data_source,
                join_key_columns,
                feature_name_columns,
                timestamp_field,
                created_timestamp_column,
                start_date,
                end_date,
            )

        def evaluate() -> Any:
            ts_columns = [timestamp_field] + ([created_timestamp_column] if created_timestamp_column else [])
            frame = _read(
                config,
                data_source,
                list(dict.fromkeys([*join_key_columns, *feature_name_columns, *ts_columns])),
                timestamp_field,
                start_date,
                end_date,
            )
            frame = _time_ordered(frame, ts_columns).reset_index(drop=True)
            return _Computed(frame)

        return DaskRetrievalJob(evaluation_function=evaluate, full_feature_names=False, repo_path=str(config.repo_path))
