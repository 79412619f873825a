"""Feast operators: apply the feature repository, materialize an interval, build point-in-time training sets."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import MlopsError, SourceDataMissingError
from mlops_provider.features.aggregates import SOURCE_TAG
from mlops_provider.hooks.feast import FeastHook
from mlops_provider.partitions import day_bounds, resolve_dates, safe_segment, zone_uri
from mlops_provider.payloads import TrainingSetManifest
from mlops_provider.settings import get_settings
from mlops_provider.utils.faults import fault_point

#: The entity-frame column Feast's ``get_historical_features`` takes each row's as-of time from.
FEAST_ENTITY_TIMESTAMP = "event_timestamp"

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context
    from feast import FeatureStore

    from mlops_provider.settings import MlopsSettings


class _FeastOperator(BaseOperator):
    """Common arguments: the Feast connection, the repository and the storage connection."""

    def __init__(
        self,
        *,
        feast_conn_id: str | None = None,
        repo_path: str | None = None,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feast_conn_id = feast_conn_id
        self.repo_path = repo_path
        self.storage_conn_id = storage_conn_id
        #: ``{partition key: version}`` pinned by a reproduction (None: read the current partitions).
        self.pinned_versions: dict[str, str] | None = None
        #: ``{partition key: version}`` of every validated partition this task read.
        self.versions_read: dict[str, str] = {}

    @cached_property
    def settings(self) -> MlopsSettings:
        """Bundle settings, read once per task run."""
        return get_settings()

    @cached_property
    def hook(self) -> FeastHook:
        """Feast hook for this task."""
        return FeastHook(feast_conn_id=self.feast_conn_id, repo_path=self.repo_path)

    @property
    def _conn_id(self) -> str | None:
        return self.storage_conn_id or self.settings.storage_conn_id

    def _read_validated(self, dataset: str, day: date, columns: list[str] | None = None) -> pd.DataFrame | None:
        """One validated partition (the pinned version when pinned), its version noted in ``versions_read``.

        ``columns``: read only those the partition has (the caller names any it lacks); default every column.
        """
        import pandas as pd
        import pyarrow.parquet as pq

        data = self._read_validated_bytes(dataset, day)
        if data is None:
            return None
        if columns is not None:
            present = set(pq.read_schema(io.BytesIO(data)).names)
            columns = [c for c in columns if c in present]
        return pd.read_parquet(io.BytesIO(data), columns=columns)

    def _read_validated_bytes(self, dataset: str, day: date) -> bytes | None:
        """The Parquet bytes of one validated partition, as :meth:`_read_validated` picks and records it."""
        from mlops_provider.partitions import partition_key, read_partition

        key = partition_key("validated", dataset, day)
        zone = zone_uri(self.settings.data_root, "validated", dataset)
        if self.pinned_versions is not None:
            if key not in self.pinned_versions:
                return None  # the recorded build did not read it either: it did not exist then
            found = read_partition(zone, day, version=self.pinned_versions[key], conn_id=self._conn_id, key=key)
        else:
            found = read_partition(zone, day, conn_id=self._conn_id)
        if found is None:
            return None
        data, self.versions_read[key] = found
        return data

    def _build_aggregates(
        self, store: FeatureStore, view_names: list[str], days: list[date], scratch: str | None = None
    ) -> dict[str, list]:
        """(Re)build the aggregate files of every tagged view in ``view_names`` for ``days``.

        ``scratch``: write them under ``<scratch>/<view>`` instead of the view's source folder (a reproduction).
        """
        from dataclasses import replace

        from mlops_provider.features.aggregates import build_partitions, spec_from_view
        from mlops_provider.storage import write_parquet_atomic

        specs = {}
        for name in view_names:
            spec = spec_from_view(store.get_feature_view(name))
            if spec is not None:
                specs[name] = spec if scratch is None else replace(spec, path=f"{scratch}/{name}")
        # Views over the same dataset read it once, and only the columns some view aggregates.
        columns: dict[str, dict[str, None]] = {}
        for spec in specs.values():
            columns.setdefault(spec.source_dataset, {}).update(dict.fromkeys([spec.key, spec.timestamp, *spec.columns]))
        built: dict[str, list] = {}
        cache: dict[tuple[str, date], pd.DataFrame | None] = {}

        def read(dataset: str, day: date) -> pd.DataFrame | None:
            if (dataset, day) not in cache:
                cache[(dataset, day)] = self._read_validated(dataset, day, list(columns[dataset]))
            return cache[(dataset, day)]

        for name, spec in specs.items():

            def write(day: date, frame: pd.DataFrame, spec=spec) -> str:
                uri = spec.file_uri(day)
                write_parquet_atomic(frame, uri, self._conn_id)
                return uri

            built[name] = build_partitions(spec, days, lambda d, spec=spec: read(spec.source_dataset, d), write)
            self.log.info(
                "Built %s aggregate rows for %s over %s..%s",
                sum(p["rows"] for p in built[name]),
                name,
                days[0],
                days[-1],
            )
        return built


class FeastApplyOperator(_FeastOperator):
    """Register the feature repository's entities, sources, views and services (``feast apply``).

    Idempotent; objects the repository no longer defines are removed from the registry.

    :param feast_conn_id: Feast connection; default ``[mlops] feast_conn_id`` (missing: local stores). (templated)
    :param repo_path: feature repository; default ``[mlops] feast_repo_path``. (templated)
    """

    template_fields: Sequence[str] = ("feast_conn_id", "repo_path")
    ui_color = "#f0e0f5"

    def execute(self, context: Context) -> dict[str, Any]:
        """Apply the repository and return what was applied."""
        return self.hook.apply()


#: Where a static table's materialization starts: before any row it can hold.
EPOCH = datetime(1970, 1, 2, tzinfo=UTC)


class FeastMaterializeOperator(_FeastOperator):
    """Build the interval's aggregate features and load them into the online store.

    For every feature view tagged as an aggregate (see :mod:`mlops_provider.features.aggregates`) the
    interval's days are rebuilt from the validated zone, then Feast materializes the interval. Re-running
    an interval rewrites the same files and the same online values. Materializing an older interval after
    a newer one extends the range to the newest materialized end, so the online store never goes back
    in time. Any other view (a static per-entity table, whose rows are valid from a date long before the
    interval) is materialized from its first row: its latest row per entity up to the end goes online.

    Long windows are materialized in chunks of ``chunk_days``, oldest first, each recorded in a checkpoint
    (``<data_root>/checkpoints/feast_materialize/``) of this task: a retry after a killed worker goes on after the last
    completed chunk instead of starting over. Both DAGs that write a feature store use the pool
    :data:`~mlops_provider.names.FEAST_REGISTRY_POOL` (one slot) for apply and materialize, so registry writes
    never overlap.

    :param start: first day, YYYY-MM-DD; empty means the run's date. (templated)
    :param end: last day (inclusive); empty means ``start``. (templated)
    :param feature_views: views to materialize; default every online feature view. (templated)
    :param chunk_days: days per materialize call; default ``[mlops] feast_materialize_chunk_days``. (templated)
    :param build_features: rebuild aggregate files before materializing.
    :param feast_conn_id: Feast connection. (templated)
    :param repo_path: feature repository. (templated)
    :param storage_conn_id: connection for ``data_root``. (templated)
    """

    template_fields: Sequence[str] = (
        "start",
        "end",
        "feature_views",
        "chunk_days",
        "feast_conn_id",
        "repo_path",
        "storage_conn_id",
    )
    ui_color = "#f0e0f5"

    def __init__(
        self,
        *,
        start: str = "",
        end: str = "",
        feature_views: list[str] | None = None,
        chunk_days: int | str | None = None,
        build_features: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start = start
        self.end = end
        self.feature_views = feature_views
        self.chunk_days = chunk_days
        self.build_features = build_features

    def execute(self, context: Context) -> dict[str, Any]:
        """Build the aggregates, materialize, and return per-view row counts."""
        from feast.utils import make_tzaware

        days = resolve_dates(self.start, self.end, context)
        store = self.hook.get_feature_store()
        views = [v for v in store.list_feature_views() if v.online]
        if self.feature_views:
            unknown = sorted(set(self.feature_views) - {v.name for v in views})
            if unknown:
                raise MlopsError(
                    f"Feature views {unknown} are not registered online views of {store.project}; run FeastApplyOperator first."
                )
            views = [v for v in views if v.name in self.feature_views]
        if not views:
            raise MlopsError(
                f"Feast project {store.project} has no online feature views; run FeastApplyOperator first."
            )
        names = [v.name for v in views]
        began = time.perf_counter()
        built = self._build_aggregates(store, names, days) if self.build_features else {}
        build_seconds = time.perf_counter() - began

        start = day_bounds(days[0])[0]
        end = day_bounds(days[-1])[1] - timedelta(microseconds=1)
        # Never move the online store back in time: cover up to the newest end already materialized.
        newest = [make_tzaware(v.most_recent_end_time) for v in views if v.most_recent_end_time]
        effective_end = max([end, *newest])
        began = time.perf_counter()
        rebuilt = [v.name for v in views if (v.tags or {}).get(SOURCE_TAG)]
        static = [name for name in names if name not in rebuilt]
        chunks = materialization_chunks(start, effective_end, self._chunk_days())
        checkpoint = self._checkpoint_uri(context, store.project, names, start, end)
        done = read_checkpoint(checkpoint, self._conn_id)
        resumed = [c for c in chunks if done is not None and c[1] <= done]
        if resumed:
            self.log.info("Resuming after chunk %s..%s, completed by an earlier try", *resumed[-1])
        for chunk_start, chunk_end in chunks[len(resumed) :]:
            if rebuilt:
                store.materialize(start_date=chunk_start, end_date=chunk_end, feature_views=rebuilt)
            write_checkpoint(checkpoint, chunk_end, self._conn_id)
            fault_point("feast.mid_materialize")
        if static:
            store.materialize(start_date=EPOCH, end_date=effective_end, feature_views=static)
        materialize_seconds = time.perf_counter() - began
        self.log.info(
            "Materialized %s over %s..%s into %s", names, start, effective_end, store.config.online_store.type
        )
        result = {
            "project": store.project,
            "feature_views": names,
            "start": start.isoformat(),
            "end": effective_end.isoformat(),
            "online_store": store.config.online_store.type,
            "feature_rows": {name: sum(p["rows"] for p in parts) for name, parts in built.items()},
            "chunks": len(chunks),
            "chunks_resumed": len(resumed),
            "seconds": {"build_features": round(build_seconds, 3), "materialize": round(materialize_seconds, 3)},
        }
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {
                k: result[k] for k in ("project", "feature_views", "start", "end", "feature_rows")
            }
        return result

    def _chunk_days(self) -> int:
        value = self.chunk_days if self.chunk_days not in (None, "") else self.settings.feast_materialize_chunk_days
        try:
            days = int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            days = 0
        if days < 1:
            raise MlopsError(f"chunk_days must be a whole number of days >= 1, got {value!r}.")
        return days

    def _checkpoint_uri(self, context: Context, project: str, views: list[str], start: datetime, end: datetime) -> str:
        """Checkpoint of this task: one per run, task and window, the same for every try."""
        ti = context["ti"]
        identity = [ti.dag_id, ti.run_id, ti.task_id, ti.map_index, project, sorted(views), f"{start}", f"{end}"]
        key = hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:32]
        return f"{zone_uri(self.settings.data_root, 'checkpoints', 'feast_materialize')}/{key}.json"


def materialization_chunks(start: datetime, end: datetime, chunk_days: int) -> list[tuple[datetime, datetime]]:
    """Split ``start..end`` (inclusive) into consecutive windows of ``chunk_days`` days, oldest first."""
    chunks = []
    chunk_start = start
    while chunk_start <= end:
        chunk_end = min(chunk_start + timedelta(days=chunk_days) - timedelta(microseconds=1), end)
        chunks.append((chunk_start, chunk_end))
        chunk_start = chunk_end + timedelta(microseconds=1)
    return chunks


def read_checkpoint(uri: str, conn_id: str | None) -> datetime | None:
    """End of the last chunk a try of this task completed, or None."""
    from mlops_provider.storage import storage_path

    path = storage_path(uri, conn_id)
    if not path.exists():
        return None
    return datetime.fromisoformat(json.loads(path.read_text())["completed_until"])


def write_checkpoint(uri: str, completed_until: datetime, conn_id: str | None) -> None:
    """Record that every chunk up to ``completed_until`` is in the online store (atomically)."""
    from mlops_provider.storage import write_bytes_atomic

    write_bytes_atomic(json.dumps({"completed_until": completed_until.isoformat()}).encode(), uri, conn_id)


class ServiceLayout(NamedTuple):
    """What a feature service joins and returns (see :func:`service_layout`)."""

    #: The service's feature service object (what ``get_historical_features`` takes).
    service: Any
    #: Its batch (non on-demand) feature views: the ones with aggregate files to build.
    batch_views: list[str]
    #: Join keys of its batch views, in first-seen order: the entity frame's key columns.
    entity_columns: list[str]
    #: Request-source fields its on-demand views read from the entity frame.
    request_fields: list[str]
    #: ``view:feature`` references and the feature columns they become, in the service's order.
    feature_refs: list[str]
    feature_columns: list[str]


def service_layout(store: FeatureStore, feature_service: str) -> ServiceLayout:
    """Return the views, entity keys, request fields and features of ``feature_service``.

    Training sets and batch scoring both read it, so both join the same keys and return the same columns.
    """
    service = store.get_feature_service(feature_service)
    odfv_names = {v.name for v in store.list_on_demand_feature_views()}
    layout = ServiceLayout(service, [], [], [], [], [])
    for projection in service.feature_view_projections:
        for feature in projection.features:
            layout.feature_refs.append(f"{projection.name_to_use()}:{feature.name}")
            layout.feature_columns.append(feature.name)
        if projection.name in odfv_names:
            odfv = store.get_on_demand_feature_view(projection.name)
            for source in odfv.source_request_sources.values():
                layout.request_fields.extend(f.name for f in source.schema if f.name not in layout.request_fields)
        else:
            layout.batch_views.append(projection.name)
            for key in store.get_feature_view(projection.name).join_keys:
                if key not in layout.entity_columns:
                    layout.entity_columns.append(key)
    return layout


def historical_features(
    store: FeatureStore, layout: ServiceLayout, events: pd.DataFrame, timestamp_column: str
) -> pd.DataFrame:
    """Join ``events`` with the service's features as of each event's ``timestamp_column`` (point in time).

    ``events`` holds the entity keys, the timestamp and the request fields (plus any column to carry along).
    Feast's as-of join reads each row's time from ``event_timestamp``; the result keeps ``timestamp_column``
    under its own name, as the dataset has it.
    """
    import pandas as pd

    entity_df = events.copy()
    entity_df[FEAST_ENTITY_TIMESTAMP] = pd.to_datetime(entity_df[timestamp_column], utc=True)
    joined = store.get_historical_features(entity_df=entity_df, features=layout.service).to_df()
    joined[timestamp_column] = joined[FEAST_ENTITY_TIMESTAMP]
    return joined


def label_rate(labels: Any) -> float | None:
    """The mean of a numeric label (the positive rate of a 0/1 label); None for text labels (multiclass)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(labels) or pd.api.types.is_numeric_dtype(labels):
        return round(float(labels.astype(float).mean()), 6)
    return None


def training_set_frame(
    joined: pd.DataFrame,
    entity_columns: list[str],
    timestamp_column: str,
    feature_columns: list[str],
    label_column: str | None,
    *,
    what: str = "the feature service",
) -> tuple[pd.DataFrame, list[str]]:
    """Return the training set's rows, deterministically sorted, and its categorical feature columns.

    Batch scoring builds its rows through here too, without a label (``label_column`` None).

    Numeric and boolean features stay as they are; string (and ``category``) features stay strings (nulls kept),
    listed as categorical; any other type (timestamps, bytes, lists) is refused. A column that is both an entity
    key and a feature appears once.
    """
    import pandas as pd

    from mlops_provider.training.evaluation import categorical_columns

    label = [label_column] if label_column else []
    columns = list(dict.fromkeys([*entity_columns, timestamp_column, *feature_columns, *label]))
    missing = [c for c in columns if c not in joined.columns]
    if missing:
        raise MlopsError(f"Columns {missing} of {what} are not in the joined training rows.")
    data = joined[columns].copy()
    categorical = categorical_columns(data, feature_columns)
    unusable = [
        f"{c} ({data[c].dtype})"
        for c in feature_columns
        if c not in categorical
        and not pd.api.types.is_numeric_dtype(data[c])
        and not pd.api.types.is_bool_dtype(data[c])
    ]
    if unusable:
        raise MlopsError(
            f"Features {unusable} of {what} are neither numbers nor strings; models take numeric and categorical "
            "(string) features."
        )
    for column in categorical:  # text, whatever Feast returned it as (object, string, category); nulls stay null
        data[column] = (
            data[column].astype(object).where(data[column].notna(), None).map(lambda v: v if v is None else str(v))
        )
    data[timestamp_column] = pd.to_datetime(data[timestamp_column], utc=True).astype("datetime64[us, UTC]")
    order = list(dict.fromkeys([timestamp_column, *entity_columns, *feature_columns, *label]))
    data = data.sort_values(order, kind="mergesort").reset_index(drop=True)
    return data, categorical


#: Version of a snapshot's byte layout, recorded in its manifest (the hash is over the bytes). 2: written by
#: :func:`write_training_set` (streamed, row groups of :data:`SNAPSHOT_ROW_GROUP_ROWS`); 1 (no key): pandas.
SNAPSHOT_FORMAT = 2
#: Rows per row group of a snapshot: what the trainer reads at a time when it streams one.
SNAPSHOT_ROW_GROUP_ROWS = 262_144


class TrainingSetFile(NamedTuple):
    """A snapshot written by :func:`write_training_set`, before it is published."""

    path: str
    sha256: str
    rows: int
    categorical_columns: list[str]
    #: The mean of a numeric label (see :func:`label_rate`); None for a text label.
    label_rate: float | None


def _sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _with_timestamp(batch: Any, timestamp_column: str) -> Any:
    """The joined batch with ``timestamp_column`` holding Feast's as-of time (the dataset's own column name)."""
    if timestamp_column == FEAST_ENTITY_TIMESTAMP:
        return batch
    values = batch.column(FEAST_ENTITY_TIMESTAMP)
    index = batch.schema.get_field_index(timestamp_column)
    if index < 0:
        return batch.append_column(timestamp_column, values)
    return batch.set_column(index, timestamp_column, values)


def _snapshot_schema(
    schema: Any, timestamp_column: str, feature_columns: list[str], what: str
) -> tuple[Any, list[str]]:
    """The snapshot's column types and its categorical features; refuses features that are neither."""
    import pyarrow as pa

    fields, categorical, unusable = [], [], []
    for field in schema:
        kind = field.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            kind = pa.string()
            if field.name in feature_columns:
                categorical.append(field.name)
        elif field.name == timestamp_column:
            kind = pa.timestamp("us", tz="UTC")
        elif pa.types.is_null(kind):
            kind = pa.float64()  # a feature no label row found: all missing
        elif field.name in feature_columns and not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            unusable.append(f"{field.name} ({kind})")
        fields.append(pa.field(field.name, kind))
    if unusable:
        raise MlopsError(
            f"Features {unusable} of {what} are neither numbers nor strings; models take numeric and categorical "
            "(string) features."
        )
    return pa.schema(fields), [c for c in feature_columns if c in categorical]


def write_training_set(
    batches: Any,
    *,
    entity_columns: list[str],
    timestamp_column: str,
    feature_columns: list[str],
    label_column: str,
    work: str,
    what: str = "the feature service",
    config: Any = None,
) -> TrainingSetFile:
    """Write the joined ``batches`` (Arrow tables) as one deterministically sorted Parquet snapshot under ``work``.

    Out of core: each batch goes to a scratch file as it comes, then DuckDB sorts them (spilling beyond the
    offline store's ``memory_limit``, see :func:`~mlops_provider.features.offline_store.duckdb_connection`) by
    timestamp, entity keys, features and label, and the sorted rows are written in row groups of
    :data:`SNAPSHOT_ROW_GROUP_ROWS`, so the bytes (hence the hash) depend on the rows only, never on how the
    join batched them. Numeric and boolean features keep their types, string features stay strings (the
    categorical columns), and any other feature type is refused, as :func:`training_set_frame` does.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mlops_provider.features.offline_store import duckdb_connection

    columns = list(dict.fromkeys([*entity_columns, timestamp_column, *feature_columns, label_column]))
    parts = 0
    for batch in batches:
        missing = [c for c in columns if c not in batch.column_names]
        if missing:
            raise MlopsError(f"Columns {missing} of {what} are not in the joined training rows.")
        pq.write_table(batch.select(columns), f"{work}/joined-{parts:06d}.parquet")
        parts += 1
    if not parts:
        raise MlopsError(f"The join of {what} returned no rows; nothing to train on.")
    order = list(dict.fromkeys([timestamp_column, *entity_columns, *feature_columns, label_column]))
    path = f"{work}/data.parquet"
    rows, label_sum, label_count = 0, 0.0, 0
    with duckdb_connection(config) as connection:
        query = (
            f"SELECT {', '.join(map(_sql_name, columns))} FROM read_parquet('{work}/joined-*.parquet', "
            f"union_by_name = true) ORDER BY {', '.join(map(_sql_name, order))}"
        )
        # Small result batches: DuckDB counts them against its memory limit; the writer regroups them.
        reader = connection.sql(query).to_arrow_reader(SNAPSHOT_ROW_GROUP_ROWS // 4)
        schema, categorical = _snapshot_schema(reader.schema, timestamp_column, feature_columns, what)
        numeric_label = any(
            check(schema.field(label_column).type)
            for check in (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
        )
        pending: list[Any] = []
        with pq.ParquetWriter(path, schema, compression="snappy") as writer:

            def flush(table: Any) -> None:
                writer.write_table(table, row_group_size=SNAPSHOT_ROW_GROUP_ROWS)

            for batch in reader:
                table = pa.Table.from_batches([batch]).cast(schema)
                rows += table.num_rows
                if numeric_label:
                    values = pc.cast(table.column(label_column), pa.float64())
                    label_sum += float(pc.sum(values).as_py() or 0.0)
                    label_count += int(pc.count(values).as_py())
                pending.append(table)
                # Fixed row groups, whatever the batch sizes: the same rows always give the same bytes.
                while sum(t.num_rows for t in pending) >= SNAPSHOT_ROW_GROUP_ROWS:
                    merged = pa.concat_tables(pending)
                    flush(merged.slice(0, SNAPSHOT_ROW_GROUP_ROWS))
                    rest = merged.slice(SNAPSHOT_ROW_GROUP_ROWS)
                    pending = [rest] if rest.num_rows else []
            if pending:
                flush(pa.concat_tables(pending))
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 23), b""):
            digest.update(chunk)
    rate = round(label_sum / label_count, 6) if numeric_label and label_count else None
    return TrainingSetFile(path, digest.hexdigest(), rows, categorical, rate)


class FeastTrainingSetOperator(_FeastOperator):
    """Join the interval's labels with their features as of each label's time, and snapshot the result.

    Labels are the validated rows of ``dataset`` in the interval; their entity keys, timestamp and the
    request fields the service's on-demand views need go to Feast's ``get_historical_features`` (an as-of
    join: no feature value from after a label's timestamp). The result, sorted deterministically, is
    written to ``training_sets/<dataset>/<hash>/data.parquet`` with ``manifest.json`` beside it, where
    ``<hash>`` is the content hash of the Parquet bytes. The manifest is returned and the hash goes into
    the outlet asset event.

    :param dataset: dataset whose validated rows hold the labels. (templated)
    :param feature_service: Feast feature service, e.g. ``<model>_v1``. (templated)
    :param label_column: label column. (templated)
    :param partition_start: first day; empty means the run's date. (templated)
    :param partition_end: last day (inclusive). (templated)
    :param timestamp_column: event-time column of the dataset; the training set keeps it under this name
        and the manifest records it. (templated)
    :param build_features: rebuild the interval's aggregate files first (idempotent).
    :param entity_features: entity keys (or request fields) of the service that are also model inputs, e.g. a
        code the model should learn from; they join the feature columns after the service's features. (templated)
    :param partition_versions: ``{"validated/<dataset>/dt=YYYY-MM-DD": version}`` to read instead of the
        current partitions (a manifest's ``partition_versions``): rebuilds a recorded training set from exactly
        the data it read. The aggregates then go to a scratch folder, never to the views' files, and an existing
        snapshot's manifest is left as it is. (templated)
    :param feast_conn_id: Feast connection. (templated)
    :param repo_path: feature repository. (templated)
    :param storage_conn_id: connection for ``data_root``. (templated)

    The manifest's ``partition_versions`` records the version of every validated partition the build read
    (labels and the aggregates' look-back), so the same training set can be rebuilt after the data changed.

    String features (Feast ``String``) stay strings: the manifest lists them in ``categorical_columns`` and the
    trainer learns them as categoricals (see :func:`training_set_frame`).
    """

    template_fields: Sequence[str] = (
        "dataset",
        "feature_service",
        "entity_features",
        "label_column",
        "partition_start",
        "partition_end",
        "timestamp_column",
        "partition_versions",
        "feast_conn_id",
        "repo_path",
        "storage_conn_id",
    )
    ui_color = "#f0e0f5"

    def __init__(
        self,
        *,
        dataset: str,
        feature_service: str,
        label_column: str,
        partition_start: str = "",
        partition_end: str = "",
        timestamp_column: str = "event_timestamp",
        build_features: bool = True,
        entity_features: list[str] | None = None,
        partition_versions: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.entity_features = entity_features
        self.partition_versions = partition_versions
        self.dataset = dataset
        self.feature_service = feature_service
        self.label_column = label_column
        self.partition_start = partition_start
        self.partition_end = partition_end
        self.timestamp_column = timestamp_column
        self.build_features = build_features

    def execute(self, context: Context) -> TrainingSetManifest:
        """Build the training set and return its manifest."""
        safe_segment(self.dataset, "dataset name")  # before any read: it names folders in two zones

        from mlops_provider.storage import storage_path, write_bytes_atomic, write_stream_atomic

        days = resolve_dates(self.partition_start, self.partition_end, context)
        store = self.hook.get_feature_store()
        layout = service_layout(store, self.feature_service)
        entity_columns, request_fields = layout.entity_columns, layout.request_fields
        feature_refs, feature_columns = layout.feature_refs, list(layout.feature_columns)
        unknown = [c for c in self.entity_features or [] if c not in entity_columns and c not in request_fields]
        if unknown:
            raise MlopsError(
                f"entity_features {unknown} are neither entity keys {entity_columns} nor request fields "
                f"{request_fields} of feature service {self.feature_service}."
            )
        feature_columns += [c for c in self.entity_features or [] if c not in feature_columns]

        self.versions_read = {}
        self.pinned_versions = dict(self.partition_versions) if self.partition_versions else None
        scratch = None
        if self.pinned_versions is not None:
            from mlops_provider.hooks.feast import AS_OF_FILE_STORE

            if getattr(store.config.offline_store, "type", None) != AS_OF_FILE_STORE:
                raise MlopsError(
                    "Rebuilding a training set from recorded partition versions needs the bundle's file offline store "
                    f"({AS_OF_FILE_STORE}, Feast's 'file' type); this store uses "
                    f"{getattr(store.config.offline_store, 'type', '?')}."
                )
            scratch = tempfile.TemporaryDirectory(prefix="mlops-rebuild-")
        redirects: dict[str, str] = {}
        if self.build_features or scratch is not None:
            built = self._build_aggregates(store, layout.batch_views, days, scratch.name if scratch else None)
            if scratch is not None:
                sources = {n: getattr(store.get_feature_view(n).batch_source, "path", None) for n in built}
                redirects = {str(path): f"{scratch.name}/{n}" for n, path in sources.items() if path}

        try:
            with tempfile.TemporaryDirectory(prefix="mlops-training-set-") as work:
                snapshot = self._join_and_write(store, layout, days, feature_columns, redirects, work)
                folder = f"{zone_uri(self.settings.data_root, 'training_sets', self.dataset)}/{snapshot.sha256[:16]}"
                uri = f"{folder}/data.parquet"
                with open(snapshot.path, "rb") as source:
                    write_stream_atomic(source, uri, self._conn_id)
        finally:
            if scratch is not None:
                scratch.cleanup()
        ts_col = self.timestamp_column
        content_hash, digest, categorical = snapshot.sha256[:16], snapshot.sha256, snapshot.categorical_columns
        manifest: TrainingSetManifest = {
            "uri": uri,
            "hash": content_hash,
            "sha256": digest,
            "rows": snapshot.rows,
            "snapshot_format": SNAPSHOT_FORMAT,
            "dataset": self.dataset,
            "start": days[0].isoformat(),
            "end": days[-1].isoformat(),
            "label_column": self.label_column,
            "timestamp_column": ts_col,
            "entity_columns": entity_columns,
            "feature_columns": feature_columns,
            "categorical_columns": categorical,
            "feature_refs": feature_refs,
            "feature_service": self.feature_service,
            "feast_project": store.project,
            "label_rate": snapshot.label_rate,
            "created_at": datetime.now().astimezone().isoformat(),
            "partition_versions": dict(sorted(self.versions_read.items())),
        }
        manifest_uri = f"{folder}/manifest.json"
        if self.pinned_versions is None or not storage_path(manifest_uri, self._conn_id).exists():
            write_bytes_atomic(json.dumps(manifest, indent=2).encode(), manifest_uri, self._conn_id)
        self.log.info(
            "Training set %s: %d rows x %d features -> %s", content_hash, snapshot.rows, len(feature_columns), uri
        )
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {
                "hash": content_hash,
                "uri": uri,
                "rows": snapshot.rows,
                "dataset": self.dataset,
                "start": manifest["start"],
                "end": manifest["end"],
                "feature_service": self.feature_service,
            }
        return manifest

    def _join_and_write(
        self,
        store: FeatureStore,
        layout: ServiceLayout,
        days: list[date],
        feature_columns: list[str],
        redirects: dict[str, str],
        work: str,
    ) -> TrainingSetFile:
        """Stage the label partitions in ``work``, join their features as of each label, write the sorted snapshot.

        With the bundle's file offline store the join streams (DuckDB, bounded memory, see
        :mod:`mlops_provider.features.offline_store`); any other offline store gets the labels as one DataFrame,
        Feast's API. Either way the joined rows go through :func:`write_training_set`.
        """
        import pyarrow.parquet as pq

        from mlops_provider.features.offline_store import redirected_sources
        from mlops_provider.hooks.feast import AS_OF_FILE_STORE

        label_files: list[str] = []
        columns: dict[str, None] = {}
        rows = 0
        for day in days:
            data = self._read_validated_bytes(self.dataset, day)
            if data is None:
                raise SourceDataMissingError(
                    f"Validated partition dt={day} of {self.dataset} does not exist; run ingestion and validation "
                    "for the training window first."
                )
            path = f"{work}/labels-{day:%Y-%m-%d}.parquet"
            with open(path, "wb") as handle:
                handle.write(data)
            del data  # one partition's bytes in memory at a time
            label_files.append(path)
            metadata = pq.read_metadata(path)
            rows += metadata.num_rows
            columns.update(dict.fromkeys(metadata.schema.to_arrow_schema().names))
        ts_col = self.timestamp_column
        needed = [*layout.entity_columns, ts_col, self.label_column]
        needed += [f for f in layout.request_fields if f not in needed]
        missing = [c for c in needed if c not in columns]
        if missing:
            raise MlopsError(
                f"Columns {missing} needed by feature service {self.feature_service} (entity keys, request fields) or "
                f"as label/timestamp are not in the validated {self.dataset} data."
            )
        if not rows:
            raise MlopsError(f"No validated {self.dataset} rows between {days[0]} and {days[-1]}; nothing to train on.")
        batches: Iterator[Any]
        with redirected_sources(redirects):
            if getattr(store.config.offline_store, "type", None) == AS_OF_FILE_STORE:
                files = ", ".join("'" + f.replace("'", "''") + "'" for f in label_files)
                selected = [_sql_name(c) for c in needed if c != FEAST_ENTITY_TIMESTAMP]
                query = (
                    f"SELECT {', '.join(selected)}, CAST({_sql_name(ts_col)} AS TIMESTAMPTZ) AS "
                    f"{FEAST_ENTITY_TIMESTAMP} FROM read_parquet([{files}], union_by_name = true)"
                )
                job: Any = store.get_historical_features(entity_df=query, features=layout.service)
                batches = (_with_timestamp(batch, ts_col) for batch in job.iter_batches())
            else:
                import pandas as pd
                import pyarrow as pa

                labels = pd.concat([pd.read_parquet(f, columns=needed) for f in label_files], ignore_index=True)
                joined = historical_features(store, layout, labels, ts_col)
                batches = iter([pa.Table.from_pandas(joined, preserve_index=False)])
            return write_training_set(
                batches,
                entity_columns=layout.entity_columns,
                timestamp_column=ts_col,
                feature_columns=feature_columns,
                label_column=self.label_column,
                work=work,
                what=self.feature_service,
                config=store.config,
            )
