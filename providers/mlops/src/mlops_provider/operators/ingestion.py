"""Copy one data interval's source files into the raw zone as Parquet, atomically and idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import SourceDataMissingError
from mlops_provider.partitions import partition_uri, resolve_dates, safe_segment, zone_uri
from mlops_provider.settings import get_settings
from mlops_provider.utils.faults import fault_point

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.settings import MlopsSettings


class IngestionOperator(BaseOperator):
    """Ingest each daily partition of an interval into ``raw/<dataset>/dt=YYYY-MM-DD/data.parquet``.

    The source of a day is a file or a folder of ``*.parquet`` / ``*.csv`` / ``*.jsonl`` files on ``file://``,
    ``s3://`` or ``gs://`` (through ``ObjectStoragePath`` and the storage connection). Each partition is
    written to a temporary object and renamed over the target, so a re-run replaces it whole and
    readers never see half a file; every distinct content is also kept as an immutable version
    (:func:`~mlops_provider.partitions.write_partition`: same content, same version, no new copy). Every source is read before anything is written, so a bad day
    leaves all raw partitions as they were. Each outlet asset gets an event whose ``extra`` holds the
    row counts per partition.

    :param dataset: dataset name. (templated)
    :param partition_start: first day, YYYY-MM-DD; empty means the run's date. (templated)
    :param partition_end: last day (inclusive); empty means ``partition_start``. (templated)
    :param source_uri: source of a day with ``{ds}`` (YYYY-MM-DD), ``{ds_nodash}`` and ``{dataset}``
        placeholders, e.g. ``s3://vendor/exports/{ds}/``; default ``<data_root>/landing/<dataset>/dt={ds}``.
        (templated)
    :param file_format: ``auto`` (by file extension), ``parquet``, ``csv`` or ``jsonl`` (JSON lines). (templated)
    :param csv_delimiter: delimiter of CSV sources. (templated)
    :param rename: source column -> column name (``{"Trip ID": "trip_id"}``), applied first: the raw zone, the
        contract and ``derive`` see the new names; a source column not in the mapping keeps its name.
    :param derive: derived columns, ``{column: expression}`` over the source's columns (see
        :mod:`mlops_provider.spec.derive`), computed in order before the raw partition is written, so the
        contract validates them like any other column.
    :param allow_empty: accept partitions without rows (otherwise they fail like missing ones).
    :param source_conn_id: connection for the source; default: the scheme's default. (templated)
    :param storage_conn_id: connection for ``data_root``; default ``[mlops] storage_conn_id``. (templated)
    """

    template_fields: Sequence[str] = (
        "dataset",
        "partition_start",
        "partition_end",
        "source_uri",
        "file_format",
        "csv_delimiter",
        "source_conn_id",
        "storage_conn_id",
    )
    ui_color = "#dbe8f5"

    def __init__(
        self,
        *,
        dataset: str,
        partition_start: str = "",
        partition_end: str = "",
        source_uri: str | None = None,
        file_format: str = "auto",
        csv_delimiter: str = ",",
        rename: dict[str, str] | None = None,
        derive: dict[str, str] | None = None,
        allow_empty: bool = False,
        source_conn_id: str | None = None,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.partition_start = partition_start
        self.partition_end = partition_end
        self.source_uri = source_uri
        self.file_format = file_format
        self.csv_delimiter = csv_delimiter
        self.rename = dict(rename or {})
        self.derive = dict(derive or {})
        self.allow_empty = allow_empty
        self.source_conn_id = source_conn_id
        self.storage_conn_id = storage_conn_id

    @cached_property
    def settings(self) -> MlopsSettings:
        """Bundle settings, read once per task run."""
        return get_settings()

    def execute(self, context: Context) -> dict[str, Any]:
        """Read every day's source, then write each raw partition atomically."""
        import io

        import pyarrow.parquet as pq

        from mlops_provider.partitions import (
            concat_tables,
            list_source_files,
            read_source_file,
            source_uri_for,
            write_partition,
        )
        from mlops_provider.storage import storage_path

        safe_segment(self.dataset, "dataset name")
        dates = resolve_dates(self.partition_start, self.partition_end, context)
        encoded = []
        for day in dates:
            uri = source_uri_for(self.source_uri, self.settings.data_root, self.dataset, day)
            files = list_source_files(storage_path(uri, self.source_conn_id))
            if files is None:
                raise SourceDataMissingError(
                    f"No source data for {self.dataset} dt={day}: {uri} does not exist. Check that the upstream "
                    "export ran for this day and source_uri; the task retries per its retries setting, or put "
                    "SourceDataSensor in front of it to wait."
                )
            if not files:
                raise SourceDataMissingError(
                    f"Source partition {uri} for {self.dataset} dt={day} is empty: no *.parquet, *.csv or *.jsonl files. "
                    "Check the upstream export; nothing was written."
                )
            table = concat_tables(
                [read_source_file(f, self.file_format, self.csv_delimiter) for f in files], f"{uri} ({day})"
            )
            if self.rename:
                table = table.rename_columns([self.rename.get(c, c) for c in table.column_names])
            if self.derive:
                from mlops_provider.spec.derive import apply_derived

                table = apply_derived(table, self.derive, f"{self.dataset} dt={day}")
            if table.num_rows == 0 and not self.allow_empty:
                raise SourceDataMissingError(
                    f"Source partition {uri} for {self.dataset} dt={day} has 0 rows in {len(files)} file(s). If empty "
                    "days are expected set allow_empty=True; otherwise check the upstream export. Nothing was written."
                )
            # Encoded now, published below: only compressed bytes wait for the write phase, one table at a time.
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression="snappy")
            encoded.append((day, uri, len(files), table.num_rows, buffer.getvalue()))
            del table, buffer

        conn_id = self.storage_conn_id or self.settings.storage_conn_id
        partitions = []
        for day, uri, n_files, num_rows, data in encoded:
            raw_zone = zone_uri(self.settings.data_root, "raw", self.dataset)
            target = partition_uri(raw_zone, day)
            version = write_partition(data, raw_zone, day, conn_id=conn_id)
            fault_point("ingestion.mid_write")
            self.log.info(
                "Ingested %s dt=%s: %d rows from %d file(s) at %s -> %s (version %s)",
                self.dataset,
                day,
                num_rows,
                n_files,
                uri,
                target,
                version,
            )
            partitions.append(
                {"date": day.isoformat(), "uri": target, "rows": num_rows, "source_uri": uri, "version": version}
            )

        rows = sum(p["rows"] for p in partitions)
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {
                "dataset": self.dataset,
                "zone": "raw",
                "rows": rows,
                "partitions": [{"date": p["date"], "rows": p["rows"]} for p in partitions],
            }
        return {
            "dataset": self.dataset,
            "rows": rows,
            "partitions": [
                {"date": p["date"], "uri": p["uri"], "rows": p["rows"], "version": p["version"]} for p in partitions
            ],
        }
