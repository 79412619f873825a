"""Find and read a partition's source files (Parquet or CSV) from any object store."""

from __future__ import annotations

import io
from datetime import date
from typing import TYPE_CHECKING

from mlops_provider.exceptions import SourceDataFormatError

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

DATA_SUFFIXES = (".parquet", ".pq", ".csv")
_OTHER_DELIMITERS = (";", "\t", "|")


def source_uri_for(template: str | None, data_root: str, dataset: str, day: date) -> str:
    """Return the source URI of ``day``: ``template`` with ``{ds}``/``{dataset}`` filled, or the landing zone."""
    if not template:
        return f"{data_root.rstrip('/')}/landing/{dataset}/dt={day:%Y-%m-%d}"
    return template.format(ds=f"{day:%Y-%m-%d}", ds_nodash=f"{day:%Y%m%d}", dataset=dataset)


def list_source_files(path: ObjectStoragePath) -> list[ObjectStoragePath] | None:
    """Return the data files at ``path`` (a file or a folder); ``None`` when nothing exists there."""
    if path.is_file():
        return [path]
    if not path.exists() and not path.is_dir():
        return None
    return sorted(
        (p for p in path.iterdir() if p.is_file() and p.name.endswith(DATA_SUFFIXES) and p.name[0] not in "._"),
        key=lambda p: p.name,
    )


def has_source_data(uri: str, conn_id: str | None = None) -> bool:
    """Return whether ``uri`` holds at least one data file (used by the sensor and its trigger)."""
    from mlops_provider.storage import storage_path

    files = list_source_files(storage_path(uri, conn_id))
    return bool(files)


def _format_of(path: ObjectStoragePath, file_format: str) -> str:
    if file_format != "auto":
        return file_format
    return "csv" if path.name.endswith(".csv") else "parquet"


def read_source_file(path: ObjectStoragePath, file_format: str = "auto", csv_delimiter: str = ",") -> pa.Table:
    """Read one Parquet or CSV file into an Arrow table, turning read errors into actionable ones."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fmt = _format_of(path, file_format)
    data = path.read_bytes()
    if fmt == "parquet":
        try:
            return pq.read_table(pa.BufferReader(data))
        except (pa.ArrowInvalid, OSError) as err:
            raise SourceDataFormatError(
                f"{path} is not a readable Parquet file ({err}). Re-export it from the source, or remove it "
                "and re-run; nothing was written to the raw zone."
            ) from None
    if fmt != "csv":
        raise SourceDataFormatError(f"file_format must be 'auto', 'parquet' or 'csv', not {fmt!r}.")
    try:
        table = pacsv.read_csv(io.BytesIO(data), parse_options=pacsv.ParseOptions(delimiter=csv_delimiter))
    except pa.ArrowInvalid as err:
        raise SourceDataFormatError(
            f"{path} is not a readable CSV file with delimiter {csv_delimiter!r} ({err}). Check the delimiter "
            "(csv_delimiter=) and the quoting; nothing was written to the raw zone."
        ) from None
    if table.num_columns == 1:
        header = table.column_names[0]
        found = [d for d in _OTHER_DELIMITERS if d in header and d != csv_delimiter]
        if found:
            raise SourceDataFormatError(
                f"{path} parsed into a single column {header[:80]!r} with delimiter {csv_delimiter!r}; it looks "
                f"delimited by {found[0]!r}. Set csv_delimiter={found[0]!r}; nothing was written to the raw zone."
            )
    return table


def concat_tables(tables: list[pa.Table], where: str) -> pa.Table:
    """Concatenate the tables of one partition, unifying compatible schemas."""
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise SourceDataFormatError(
            f"The files of {where} have incompatible schemas ({err}); make them agree or split the partition."
        ) from None
