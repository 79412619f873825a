"""Daily partitions of the data zones: which days a task works on, where they live, and how to read them.

Every zone (``landing``, ``raw``, ``validated``, ``predictions``, ...) is laid out as
``<zone_uri>/dt=YYYY-MM-DD/<files>``. This module is the one place that knows that layout:

- dates: :func:`resolve_dates` (a templated start/end, defaulting to the run's date), :func:`context_date`,
  :func:`day_bounds`;
- locations: :func:`zone_uri` and :func:`safe_segment` (every user-supplied name is checked before it
  becomes part of a path), :func:`partition_uri`, :func:`source_uri_for` (the landing zone or a user
  template with a fixed set of ``{name}`` placeholders);
- reading: :func:`list_source_files` / :func:`read_source_file` / :func:`concat_tables` for one source
  partition (Parquet, CSV or JSON lines, as Arrow), and :func:`read_window` for the Parquet partitions of a window
  of days (as one DataFrame);
- versions: :func:`write_partition` (the current file plus an immutable content-addressed version under
  ``dt=D/_versions/`` and a ``CURRENT`` pointer, with retention), :func:`read_partition` (the current content
  and its version, or one recorded version), :func:`clear_current`, :func:`list_versions`.

Only the standard library at import time: operators that DAG files import use it; pandas and pyarrow
are imported inside the reading functions.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from mlops_provider.exceptions import MlopsError, SourceDataFormatError
from mlops_provider.names import safe_segment, zone_uri

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from airflow.sdk import Context, ObjectStoragePath

#: Upper bound on the days one task may touch (ten years): a typo in a date should fail, not loop.
MAX_PARTITIONS = 3660
#: File suffixes a source partition may hold.
DATA_SUFFIXES = (".parquet", ".pq", ".csv", ".jsonl", ".ndjson")
_OTHER_DELIMITERS = (";", "\t", "|")

# ------------------------------------------------------------------------------------------ dates


def _to_date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise MlopsError(f"{text!r} is not a date; partition dates are YYYY-MM-DD (e.g. '{{{{ ds }}}}').") from None


def context_date(context: Context | None) -> date:
    """Return the run's data date: its logical date, else its ``run_after`` date (asset/manual runs), else today."""
    if context:
        for key in ("logical_date", "data_interval_start"):
            found = _to_date(context.get(key))
            if found:
                return found
        dag_run = context.get("dag_run")
        found = _to_date(getattr(dag_run, "run_after", None)) if dag_run is not None else None
        if found:
            return found
    return datetime.now(UTC).date()


def resolve_dates(start: Any, end: Any, context: Context | None = None) -> list[date]:
    """Return every day from ``start`` to ``end`` inclusive; empty values default to the run's date."""
    first = _to_date(start)
    last = _to_date(end)
    if first is None and last is None:
        first = last = context_date(context)
    first = first or last
    last = last or first
    assert first is not None and last is not None
    if last < first:
        raise MlopsError(f"partition_end {last} is before partition_start {first}; swap them.")
    count = (last - first).days + 1
    if count > MAX_PARTITIONS:
        raise MlopsError(f"{count} daily partitions requested ({first}..{last}); at most {MAX_PARTITIONS}.")
    return [first + timedelta(days=i) for i in range(count)]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Return the UTC start of ``day`` and of the next day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


# ------------------------------------------------------------------------------------------ locations


#: The placeholders a ``source_uri`` template may use, and nothing else.
SOURCE_URI_PLACEHOLDERS = ("ds", "ds_nodash", "dataset")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def partition_uri(zone_uri: str, day: date, filename: str = "data.parquet") -> str:
    """Return ``<zone_uri>/dt=YYYY-MM-DD/<filename>``."""
    return f"{zone_uri.rstrip('/')}/dt={day:%Y-%m-%d}/{filename}"


def partition_folder(zone_uri: str, day: date) -> str:
    """Return ``<zone_uri>/dt=YYYY-MM-DD``."""
    return f"{zone_uri.rstrip('/')}/dt={day:%Y-%m-%d}"


def fill_placeholders(template: str, values: dict[str, str]) -> str:
    """Replace each ``{name}`` of ``template`` by ``values[name]``; ``{{``/``}}`` are literal braces.

    Unlike ``str.format`` nothing is evaluated: ``{ds.__class__}``, ``{ds[0]}``, ``{ds!r}`` or ``{ds:>9}``
    are unknown placeholders and raise :class:`MlopsError`, as do names outside ``values`` and stray braces.
    """

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name not in values:
            allowed = ", ".join(f"{{{k}}}" for k in values)
            raise MlopsError(
                f"Unknown placeholder {token!r} in source_uri {template!r}; the only placeholders are {allowed} "
                "(write '{{' and '}}' for literal braces)."
            )
        return values[name]

    out: list[str] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        literal = template[pos : match.start()]
        if "{" in literal or "}" in literal:
            break
        out.append(literal + fill(match))
        pos = match.end()
    rest = template[pos:]
    if "{" in rest or "}" in rest:
        raise MlopsError(f"source_uri {template!r} has unbalanced braces; write '{{{{' and '}}}}' for literal ones.")
    return "".join(out) + rest


def source_uri_for(template: str | None, data_root: str, dataset: str, day: date) -> str:
    """Return the source URI of ``day``: ``template`` with ``{ds}``/``{ds_nodash}``/``{dataset}`` filled, or the landing zone."""
    dataset = safe_segment(dataset, "dataset name")
    if not template:
        return partition_folder(zone_uri(data_root, "landing", dataset), day)
    return fill_placeholders(template, {"ds": f"{day:%Y-%m-%d}", "ds_nodash": f"{day:%Y%m%d}", "dataset": dataset})


# ------------------------------------------------------------------------------------------ one source partition


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
    if path.name.endswith(".csv"):
        return "csv"
    return "jsonl" if path.name.endswith((".jsonl", ".ndjson")) else "parquet"


def read_source_file(path: ObjectStoragePath, file_format: str = "auto", csv_delimiter: str = ",") -> pa.Table:
    """Read one Parquet, CSV or JSON lines file into an Arrow table, turning read errors into actionable ones."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    fmt = _format_of(path, file_format)
    data = path.read_bytes()
    if fmt == "jsonl":
        try:
            return pajson.read_json(io.BytesIO(data))
        except pa.ArrowInvalid as err:
            raise SourceDataFormatError(
                f"{path} is not a readable JSON lines file (one JSON object per line) ({err}). Re-export it from "
                "the source; nothing was written to the raw zone."
            ) from None
    if fmt == "parquet":
        try:
            return pq.read_table(pa.BufferReader(data))
        except (pa.ArrowInvalid, OSError) as err:
            raise SourceDataFormatError(
                f"{path} is not a readable Parquet file ({err}). Re-export it from the source, or remove it "
                "and re-run; nothing was written to the raw zone."
            ) from None
    if fmt != "csv":
        raise SourceDataFormatError(f"file_format must be 'auto', 'parquet', 'csv' or 'jsonl', not {fmt!r}.")
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


# ------------------------------------------------------------------------------------------ a window of days


class Window(NamedTuple):
    """The rows of a window of daily partitions and the days (``YYYY-MM-DD``) that had data."""

    frame: pd.DataFrame
    days: list[str]


def read_window(zone_uri: str, start: Any, end: Any, *, pattern: str = "*.parquet") -> Window:
    """Read the Parquet files of the ``dt=YYYY-MM-DD`` partitions of ``zone_uri`` from ``start`` to ``end``.

    Both ends are inclusive; days without a folder or without files are skipped (see ``Window.days``).
    An empty window gives an empty DataFrame.
    """
    import pandas as pd

    from mlops_provider.storage import read_parquet, storage_path

    frames: list[pd.DataFrame] = []
    found: list[str] = []
    for day in resolve_dates(start, end):
        folder = storage_path(partition_folder(zone_uri, day))
        if not folder.exists():
            continue
        files = sorted(p for p in folder.glob(pattern) if p.is_file())
        if not files:
            continue
        frames.extend(read_parquet(p) for p in files)
        found.append(f"{day:%Y-%m-%d}")
    if not frames:
        return Window(pd.DataFrame(), found)
    return Window(pd.concat(frames, ignore_index=True), found)


# ------------------------------------------------------------------------------------------ partition versions
#
# A write to a versioned zone (raw, validated, quarantine) never destroys content. For the partition
# ``<zone_uri>/dt=D`` and its file ``data.parquet``:
#
#   dt=D/data.parquet                          the current content: what every reader (Feast, drift, read_window) reads
#   dt=D/_versions/<version>/data.parquet      an immutable copy per distinct content; <version> = sha256[:16] of the bytes
#   dt=D/_versions/<version>/version.json      when that content was first written, its size and full digest
#   dt=D/_versions/CURRENT                     {"version": ..., "file": ...}: the version the current file holds
#
# The leading underscore hides ``_versions`` from pyarrow's dataset discovery, from ``read_window`` and from
# ``storage.read_parquet`` of a folder. Versions are content-addressed, so the same content is the same version
# (an idempotent re-run or two racing writers of one day write the same bytes to the same name) and a reader can
# name the version it read by hashing what it read, without trusting the pointer.

#: Folder of a partition holding its versions and the pointer to the current one.
VERSIONS_FOLDER = "_versions"
#: The pointer file (JSON) inside ``VERSIONS_FOLDER``.
CURRENT_POINTER = "CURRENT"
#: Per-version metadata file.
VERSION_INFO = "version.json"
#: Zones whose partition writes are versioned.
VERSIONED_ZONES = ("raw", "validated", "quarantine")


def content_version(data: bytes) -> str:
    """The version id of a partition file's bytes: the first 16 hex digits of their SHA-256."""
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


def partition_key(zone: str, dataset: str, day: date) -> str:
    """``<zone>/<dataset>/dt=YYYY-MM-DD``: how manifests name a partition."""
    return f"{zone}/{safe_segment(dataset, 'dataset name')}/dt={day:%Y-%m-%d}"


def parse_partition_key(key: str) -> tuple[str, str, date]:
    """``(zone, dataset, day)`` of a :func:`partition_key`."""
    try:
        zone, dataset, folder = key.rsplit("/", 2)
        if not folder.startswith("dt="):
            raise ValueError(folder)
        return zone, dataset, date.fromisoformat(folder[3:])
    except ValueError:
        raise MlopsError(f"{key!r} is not a partition key like 'validated/<dataset>/dt=YYYY-MM-DD'.") from None


def versions_folder(zone_uri: str, day: date) -> str:
    """``<zone_uri>/dt=YYYY-MM-DD/_versions``."""
    return f"{partition_folder(zone_uri, day)}/{VERSIONS_FOLDER}"


def version_uri(zone_uri: str, day: date, version: str, filename: str = "data.parquet") -> str:
    """URI of one immutable version of a partition file."""
    return f"{versions_folder(zone_uri, day)}/{safe_segment(version, 'partition version')}/{filename}"


def current_version(zone_uri: str, day: date, conn_id: str | None = None) -> str | None:
    """The version the partition's ``CURRENT`` pointer names; None when there is none (or it was cleared)."""
    import json

    from mlops_provider.storage import storage_path

    pointer = storage_path(f"{versions_folder(zone_uri, day)}/{CURRENT_POINTER}", conn_id)
    if not pointer.exists():
        return None
    try:
        return json.loads(pointer.read_bytes()).get("version") or None
    except ValueError:
        return None


def list_versions(zone_uri: str, day: date, conn_id: str | None = None) -> list[dict[str, Any]]:
    """The partition's versions (their ``version.json``), newest first; empty when it has none."""
    import json

    from mlops_provider.storage import storage_path

    folder = storage_path(versions_folder(zone_uri, day), conn_id)
    if not folder.exists():
        return []
    found = []
    for child in folder.iterdir():
        info = child / VERSION_INFO
        if child.name.startswith(".") or not info.exists():
            continue
        try:
            found.append(json.loads(info.read_bytes()))
        except ValueError:
            continue
    return sorted(found, key=lambda v: (v.get("created_at", ""), v.get("version", "")), reverse=True)


def _ensure_version(data: bytes, zone_uri: str, day: date, filename: str, conn_id: str | None) -> str:
    """Store ``data`` as an immutable version unless that content is already there; return its version."""
    import hashlib
    import json

    from mlops_provider.storage import storage_path, write_bytes_atomic

    version = content_version(data)
    target = storage_path(version_uri(zone_uri, day, version, filename), conn_id)
    if not target.exists():
        write_bytes_atomic(data, target)
    info = target.parent / VERSION_INFO
    if not info.exists():  # written after the data: a version with metadata always has its file
        meta = {
            "version": version,
            "file": filename,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "created_at": datetime.now(UTC).isoformat(),
        }
        write_bytes_atomic(json.dumps(meta, indent=2).encode(), info)
    return version


def write_partition(
    data: bytes,
    zone_uri: str,
    day: date,
    *,
    filename: str = "data.parquet",
    conn_id: str | None = None,
    retain: int | None = None,
) -> str:
    """Publish ``data`` as the partition's current content and as an immutable version; return the version.

    Order: the version copy (if new), then the current file, then the ``CURRENT`` pointer, then retention
    (:func:`prune_versions`, ``retain`` default ``[mlops] partition_versions_retained``). Each write is atomic;
    writing content the pointer already names changes nothing.
    """
    import json

    from mlops_provider.settings import get_settings
    from mlops_provider.storage import storage_path, write_bytes_atomic

    version = _ensure_version(data, zone_uri, day, filename, conn_id)
    current = storage_path(partition_uri(zone_uri, day, filename), conn_id)
    if current_version(zone_uri, day, conn_id) == version and current.exists():
        # An idempotent re-run (same content, same version) copies nothing, unless a write died between the
        # current file and the pointer: the bytes decide, not the pointer.
        if content_version(current.read_bytes()) == version:
            return version
    write_bytes_atomic(data, current)
    pointer = {"version": version, "file": filename, "updated_at": datetime.now(UTC).isoformat()}
    write_bytes_atomic(json.dumps(pointer).encode(), f"{versions_folder(zone_uri, day)}/{CURRENT_POINTER}", conn_id)
    prune_versions(zone_uri, day, get_settings().partition_versions_retained if retain is None else retain, conn_id)
    return version


def clear_current(zone_uri: str, day: date, *, filename: str = "data.parquet", conn_id: str | None = None) -> bool:
    """Remove the partition's current file and its pointer (its versions stay); return whether a file was there."""
    from mlops_provider.storage import remove_file

    removed = remove_file(partition_uri(zone_uri, day, filename), conn_id)
    remove_file(f"{versions_folder(zone_uri, day)}/{CURRENT_POINTER}", conn_id)
    return removed


def prune_versions(zone_uri: str, day: date, keep: int, conn_id: str | None = None) -> list[str]:
    """Delete all but the ``keep`` newest versions of a partition, never the current one; return the deleted ids."""
    from mlops_provider.storage import remove_file, storage_path

    if keep < 1:
        raise MlopsError(
            f"[mlops] partition_versions_retained={keep}: keep at least 1 version per partition "
            "(set AIRFLOW__MLOPS__PARTITION_VERSIONS_RETAINED)."
        )
    pinned = current_version(zone_uri, day, conn_id)
    removed = []
    for info in list_versions(zone_uri, day, conn_id)[keep:]:
        version = info.get("version", "")
        if not version or version == pinned:
            continue
        folder = storage_path(f"{versions_folder(zone_uri, day)}/{safe_segment(version, 'partition version')}", conn_id)
        for child in folder.iterdir():  # metadata last: a half-deleted version is still listed, then retried
            if child.name != VERSION_INFO:
                child.unlink()
        remove_file(folder / VERSION_INFO)
        if folder.exists():  # a local folder (object stores have no empty folders)
            try:
                folder.rmdir()
            except OSError:
                pass  # a racing writer put the same content back: it stays, as it should
        removed.append(version)
    return removed


def read_partition(
    zone_uri: str,
    day: date,
    *,
    version: str | None = None,
    filename: str = "data.parquet",
    conn_id: str | None = None,
    key: str | None = None,
) -> tuple[bytes, str] | None:
    """Return ``(bytes, version)`` of a partition file: the current content, or exactly ``version``.

    The current content's version is the hash of the bytes read (so it names what was read, even if a writer
    replaced the file meanwhile); when that version has no immutable copy yet (a partition written before
    versioning) the copy is made, so whatever was read can be read again. None when there is no current file.
    A ``version`` that does not exist raises :class:`PartitionVersionMissingError` naming ``key``.
    """
    from mlops_provider.exceptions import PartitionVersionMissingError
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import storage_path

    if version is not None:
        path = storage_path(version_uri(zone_uri, day, version, filename), conn_id)
        if not path.exists():
            kept = [v.get("version") for v in list_versions(zone_uri, day, conn_id)]
            raise PartitionVersionMissingError(
                f"Partition {key or partition_folder(zone_uri, day)} version {version} no longer exists "
                f"({path}); retention keeps the newest [mlops] partition_versions_retained="
                f"{get_settings().partition_versions_retained} versions per partition and the partition now has "
                f"{kept or 'none'}. It cannot be rebuilt from the recorded data: raise the retention setting to keep "
                "the versions training sets read."
            )
        return path.read_bytes(), version
    path = storage_path(partition_uri(zone_uri, day, filename), conn_id)
    if not path.exists():
        return None
    data = path.read_bytes()
    return data, _ensure_version(data, zone_uri, day, filename, conn_id)
