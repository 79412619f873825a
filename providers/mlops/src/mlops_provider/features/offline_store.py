"""A Feast offline store for Parquet file sources with an out-of-core as-of join.

Feast's ``file`` (Dask) offline store joins each label with *every* feature row of its entity and
then filters, which is quadratic in an entity's history and drops labels whose entity has feature
rows only after the label's time (an entity's first event). This store keeps Feast's API and file
sources but:

* ``get_historical_features`` runs the point-in-time join in DuckDB: one ``ASOF LEFT JOIN`` per
  feature view (latest feature row at or before each label, within the view's TTL), keeping every
  label row. The feature files are scanned as pyarrow datasets (column projection and the time range
  pushed down, any filesystem pyarrow reads: local, S3, GCS), streamed into DuckDB batch by batch.
  DuckDB was chosen over pandas and Dask because its as-of join sorts out of core: the connection
  has a ``memory_limit`` (``offline_store.memory_limit``, default :data:`DEFAULT_MEMORY_LIMIT`) and
  spills beyond it to ``offline_store.temp_directory``, so a join far larger than memory finishes with
  bounded RSS. Dask's merge_asof needs each partition's rows in memory and its file store is the
  quadratic one above. The entity rows are a DataFrame (as Feast's API takes them; rows come back in
  its order) or a DuckDB query such as ``SELECT ... FROM read_parquet([...])`` (Feast's "SQL entity
  df"), whose result :meth:`AsOfRetrievalJob.iter_batches` streams, on-demand features applied per
  batch exactly as Feast's ``to_arrow`` applies them;
* ``pull_latest_from_table_or_query`` and ``pull_all_from_table_or_query`` (what materialization
  reads) use Arrow column projection and time filters instead of Dask.

Ties: feature rows of one entity at one instant are expected to be unique (aggregate change points
are); where they are not, the as-of join takes any one of them.

Everything else (logging, monitoring, time-range retrieval without entities) is Feast's Dask store.
``FeastHook`` selects this store for ``offline_store: {type: file}``; set ``type: dask`` to force Feast's
own implementation.

This module is imported by Feast's configuration loader only, never while parsing DAGs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata  # noqa: TID253
from feast.on_demand_feature_view import OnDemandFeatureView  # noqa: TID253

STORE_TYPE = "mlops_provider.features.offline_store.AsOfFileOfflineStore"
_ENTITY_TS = "event_timestamp"
_FEATURE_TS = "__feature_ts"
_ROW = "__row"
#: DuckDB's memory for one join unless ``offline_store.memory_limit`` says otherwise; beyond it the join spills.
DEFAULT_MEMORY_LIMIT = "1GB"
#: Rows per streamed batch unless ``offline_store.batch_rows`` says otherwise.
DEFAULT_BATCH_ROWS = 131_072


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
    """Configuration of :class:`AsOfFileOfflineStore` (the join's resources).

    :param memory_limit: DuckDB memory limit of one join (e.g. ``"1GB"``); beyond it the join spills to disk.
    :param temp_directory: folder the join spills to (default: the system's temporary folder).
    :param threads: DuckDB threads (default: every core).
    :param batch_rows: rows per streamed batch.
    """

    type: Literal["mlops_provider.features.offline_store.AsOfFileOfflineStore"] = STORE_TYPE  # type: ignore[assignment]
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    temp_directory: str | None = None
    threads: int | None = None
    batch_rows: int = DEFAULT_BATCH_ROWS


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
    filesystem: Any
    if path.startswith(("gs://", "gcs://")):
        filesystem, resolved = _gcs_filesystem_and_path(path)
    else:
        filesystem, resolved = FileSource.create_filesystem_and_path(path, source.file_options.s3_endpoint_override)
    return pads.dataset(resolved, filesystem=filesystem, format="parquet", exclude_invalid_files=False)


def _gcs_filesystem_and_path(uri: str) -> tuple[Any, str]:
    """The bundle's ``gs://`` filesystem (gcsfs through the storage connection) for ``uri``, and its path there.

    Feast hands ``gs://`` to pyarrow's own GCS client, which knows neither the Airflow connection's credentials
    nor an endpoint (an emulator, a private endpoint); the storage connection the zones are written with knows
    both (``keyfile_dict``/``key_path`` or Application Default Credentials, extra ``gcs.endpoint``).
    """
    from mlops_provider.storage import storage_path

    target = storage_path(uri)
    # gcsfs keeps directory listings; files another process wrote since (a new day's features) must be seen.
    target.fs.invalidate_cache(target.path)
    return target.fs, target.path


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


@dataclass(frozen=True)
class _ViewJoin:
    """One feature view's part of a point-in-time join."""

    name: str
    source: FileSource
    source_keys: list[str]
    join_keys: list[str]
    features: list[str]
    ttl: timedelta | None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def duckdb_connection(config: Any) -> Iterator[Any]:
    """A DuckDB connection bounded by the store's ``memory_limit``, spilling to ``temp_directory``.

    Without a configured ``temp_directory`` the spill files go to a private temporary folder, removed after.
    """
    import duckdb  # noqa: TID253

    offline = getattr(config, "offline_store", None)
    memory_limit = getattr(offline, "memory_limit", None) or DEFAULT_MEMORY_LIMIT
    configured = getattr(offline, "temp_directory", None)
    with tempfile.TemporaryDirectory(prefix="mlops-asof-", dir=configured) as spill:
        settings: dict[str, Any] = {
            "memory_limit": memory_limit,
            "temp_directory": spill,
            # The join's output order is set by ORDER BY where it matters; not keeping scan order saves memory.
            "preserve_insertion_order": False,
        }
        threads = getattr(offline, "threads", None)
        if threads:
            settings["threads"] = int(threads)
        connection = duckdb.connect(config=settings)
        connection.execute("SET enable_progress_bar = false")  # it would print into task logs
        try:
            yield connection
        finally:
            connection.close()


def _utc_timestamps(table: pa.Table) -> pa.Table:
    """Name every tz-aware timestamp column's zone ``UTC`` (DuckDB says ``Etc/UTC``; the instants are equal)."""
    schema = pa.schema(
        [
            field.with_type(pa.timestamp(field.type.unit, tz="UTC"))
            if pa.types.is_timestamp(field.type) and field.type.tz
            else field
            for field in table.schema
        ]
    )
    return table if schema.equals(table.schema) else table.cast(schema)


class _ArrowJob(RetrievalJob):
    """An already computed Arrow table as a Feast job: ``to_arrow()`` applies the on-demand views as Feast does."""

    def __init__(self, table: pa.Table, parent: AsOfRetrievalJob) -> None:
        self._table = table
        self._parent = parent

    @property
    def full_feature_names(self) -> bool:
        return self._parent.full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._parent.on_demand_feature_views

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._parent.metadata

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._table.to_pandas()

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._table

    def persist(self, storage: Any, allow_overwrite: bool = False, timeout: int | None = None) -> None:
        raise NotImplementedError("A batch of a streamed join is not persisted on its own.")


class AsOfRetrievalJob(RetrievalJob):
    """A point-in-time join run by DuckDB: ``to_df()``/``to_arrow()`` in memory, or :meth:`iter_batches` streamed.

    ``entity`` is a DataFrame (rows come back in its order) or a DuckDB query (e.g. over ``read_parquet``:
    rows come back in no particular order, and only the batches being transformed are in Python memory).
    """

    def __init__(
        self,
        *,
        config: Any,
        entity: pd.DataFrame | str,
        views: list[_ViewJoin],
        full_feature_names: bool,
        on_demand_feature_views: list[OnDemandFeatureView],
        feature_refs: list[str],
    ) -> None:
        self._config = config
        self._entity = entity
        self._views = views
        self._full_feature_names = full_feature_names
        self._odfvs = on_demand_feature_views
        self._feature_refs = feature_refs
        self._metadata: RetrievalMetadata | None = None

    @property
    def full_feature_names(self) -> bool:
        """Whether feature columns are named ``<view>__<feature>``."""
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        """The on-demand views applied to the joined rows."""
        return self._odfvs

    @property
    def metadata(self) -> RetrievalMetadata | None:
        """Features, keys and time range of the entity rows (known once the join has run)."""
        return self._metadata

    def persist(self, storage: Any, allow_overwrite: bool = False, timeout: int | None = None) -> None:
        """Not supported: a training set is written by its operator from :meth:`iter_batches`."""
        raise NotImplementedError("Write the joined rows with iter_batches() or to_df().")

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        with duckdb_connection(self._config) as connection:
            query = self._query(connection, ordered=isinstance(self._entity, pd.DataFrame))
            table = connection.sql(query).to_arrow_table()
        if _ROW in table.column_names:
            table = table.drop_columns([_ROW])
        return _utc_timestamps(table)

    def iter_batches(self, batch_rows: int | None = None) -> Iterator[pa.Table]:
        """Yield the joined rows, on-demand features included, ``batch_rows`` at a time (in no particular order)."""
        rows = batch_rows or getattr(self._config.offline_store, "batch_rows", None) or DEFAULT_BATCH_ROWS
        with duckdb_connection(self._config) as connection:
            reader = connection.sql(self._query(connection, ordered=False)).to_arrow_reader(rows)
            inputs = self._on_demand_inputs(reader.schema.names)
            for batch in reader:
                if batch.num_rows:
                    table = _utc_timestamps(pa.Table.from_batches([batch]))
                    yield self._with_on_demand(table, inputs) if self._odfvs else table

    def _on_demand_inputs(self, columns: list[str]) -> list[str]:
        """The joined columns the on-demand views read: their request fields and source features (either name)."""
        wanted: set[str] = set()
        for odfv in self._odfvs:
            for request in odfv.source_request_sources.values():
                wanted.update(field.name for field in request.schema)
            for projection in odfv.source_feature_view_projections.values():
                for feature in projection.features:
                    wanted.update(
                        (
                            feature.name,
                            f"{projection.name}__{feature.name}",
                            f"{projection.name_to_use()}__{feature.name}",
                        )
                    )
        return [c for c in columns if c in wanted]

    def _with_on_demand(self, table: pa.Table, inputs: list[str]) -> pa.Table:
        """``table`` with the on-demand features appended, computed by Feast from the columns they read only.

        A Python-mode view converts its input to Python lists (``to_pydict``); handing it just its inputs
        instead of every joined column is most of a streamed join's time saved.
        """
        computed = _ArrowJob(table.select(inputs), self).to_arrow()
        for name in computed.column_names[len(inputs) :]:
            table = table.append_column(name, computed.column(name))
        return table

    def _query(self, connection: Any, *, ordered: bool) -> str:
        """Register the entity rows and feature sources on ``connection``; return the join's SQL."""
        if isinstance(self._entity, pd.DataFrame):
            frame = self._entity.assign(**{_ROW: range(len(self._entity))}) if ordered else self._entity
            connection.register("__entity_frame", frame)
            entity_sql = "SELECT * FROM __entity_frame"
        elif isinstance(self._entity, str):
            entity_sql = self._entity
        else:
            raise ValueError(
                f"entity_df must be a pandas DataFrame or a DuckDB query, got {type(self._entity).__name__}."
            )
        described = connection.sql(f"DESCRIBE {entity_sql}").fetchall()
        types = {row[0]: row[1] for row in described}
        ts_col = _ENTITY_TS
        if ts_col not in types:
            candidates = [c for c, t in types.items() if t.startswith("TIMESTAMP")]
            if len(candidates) != 1:
                raise ValueError(f"Provide an entity_df with a column named {_ENTITY_TS} holding the time of events.")
            ts_col = candidates[0]
        ts = _quote(ts_col)
        connection.execute(
            f"CREATE TEMP VIEW __entity AS SELECT * REPLACE (CAST({ts} AS TIMESTAMPTZ) AS {ts}) FROM ({entity_sql})"
        )
        lo_us, hi_us = connection.execute(f"SELECT epoch_us(min({ts})), epoch_us(max({ts})) FROM __entity").fetchall()[
            0
        ]
        if lo_us is not None:
            lo = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=lo_us)
            hi = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=hi_us)
            self._metadata = RetrievalMetadata(
                features=self._feature_refs,
                keys=[c for c in types if c not in (ts_col, _ROW)],
                min_event_timestamp=lo,
                max_event_timestamp=hi,
            )
        selected = ["e.*"]
        joins = []
        for i, view in enumerate(self._views):
            missing = [k for k in view.join_keys if k not in types]
            if missing:
                raise ValueError(f"Feature view {view.name} joins on {missing}, which the entity rows do not have.")
            source = view.source
            dataset = _dataset(self._config, source)
            field = source.timestamp_field
            condition = None
            if lo_us is not None:
                ts_type = dataset.schema.field(field).type
                condition = pads.field(field) <= _ts_scalar(hi, ts_type)
                if view.ttl is not None:
                    condition = condition & (pads.field(field) >= _ts_scalar(lo - view.ttl, ts_type))
            scan = dataset.scanner(
                columns=list(dict.fromkeys([*view.source_keys, field, *view.features])), filter=condition
            )
            connection.register(f"__source{i}", scan.to_reader())
            keys = [
                f"CAST({_quote(s)} AS {types[j]}) AS {_quote(j)}"
                for s, j in zip(view.source_keys, view.join_keys, strict=True)
            ]
            columns = [*keys, f"CAST({_quote(field)} AS TIMESTAMPTZ) AS {_FEATURE_TS}"]
            columns += [f"{_quote(f)} AS {_quote(f'__feature{i}_{n}')}" for n, f in enumerate(view.features)]
            on = " AND ".join(
                [*(f"e.{_quote(j)} = f{i}.{_quote(j)}" for j in view.join_keys), f"e.{ts} >= f{i}.{_FEATURE_TS}"]
            )
            joins.append(f"ASOF LEFT JOIN (SELECT {', '.join(columns)} FROM __source{i}) f{i} ON {on}")
            for n, feature in enumerate(view.features):
                value = f"f{i}.{_quote(f'__feature{i}_{n}')}"
                if view.ttl is not None:
                    ttl_us = int(view.ttl / timedelta(microseconds=1))
                    value = f"CASE WHEN epoch_us(e.{ts}) - epoch_us(f{i}.{_FEATURE_TS}) <= {ttl_us} THEN {value} END"
                output = f"{view.name}__{feature}" if self._full_feature_names else feature
                selected.append(f"{value} AS {_quote(output)}")
        order = f" ORDER BY e.{_quote(_ROW)}" if ordered else ""
        return f"SELECT {', '.join(selected)} FROM __entity e {' '.join(joins)}{order}"


class AsOfFileOfflineStore(DaskOfflineStore):
    """Feast's file offline store with a row-preserving, out-of-core point-in-time join."""

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
        """As-of join of ``entity_df`` (a DataFrame, or a DuckDB query) with the requested features.

        See the module docstring; the returned :class:`AsOfRetrievalJob` also streams its rows
        (:meth:`AsOfRetrievalJob.iter_batches`).
        """
        if entity_df is None:  # a time-range retrieval without entities: Feast's own implementation
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
        requested: dict[str, list[str]] = {}
        for ref in feature_refs:
            view, feature = ref.split(":", 1)
            requested.setdefault(view, []).append(feature)
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        views = []
        for fv in feature_views:
            name = fv.projection.name_to_use()
            features = requested.get(name) or requested.get(fv.name)
            if not features:
                continue
            source_keys = [c.name for c in fv.entity_columns]
            views.append(
                _ViewJoin(
                    name=name,
                    source=fv.batch_source,
                    source_keys=source_keys,
                    join_keys=[fv.projection.join_key_map.get(k, k) for k in source_keys],
                    features=features,
                    ttl=fv.ttl if fv.ttl and fv.ttl > timedelta(0) else None,
                )
            )
        return AsOfRetrievalJob(
            config=config,
            entity=entity_df,
            views=views,
            full_feature_names=full_feature_names,
            on_demand_feature_views=odfvs,
            feature_refs=feature_refs,
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
