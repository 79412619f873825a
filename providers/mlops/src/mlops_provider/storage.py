"""Object storage through Airflow's ``ObjectStoragePath``: ``file://``, ``s3://`` and ``gs://`` alike."""

from __future__ import annotations

import io
import shutil
import uuid
from typing import TYPE_CHECKING, BinaryIO

from mlops_provider.settings import get_settings

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import ObjectStoragePath

#: Bytes per read and write when copying a stream (large files are not read into memory at once).
_COPY_CHUNK = 1 << 23

_DEFAULT_CONN_BY_SCHEME = {"s3": "aws_default", "gs": "google_cloud_default", "gcs": "google_cloud_default"}


def storage_path(uri: str, conn_id: str | None = None) -> ObjectStoragePath:
    """Return an ``ObjectStoragePath`` for ``uri`` with the connection its scheme needs.

    ``conn_id`` wins; otherwise ``[mlops] storage_conn_id``; otherwise the scheme's default
    connection (``aws_default`` for ``s3://``, ``google_cloud_default`` for ``gs://``). Local paths
    without a scheme are treated as ``file://``.
    """
    from airflow.sdk import ObjectStoragePath

    if "://" not in uri:
        uri = f"file://{uri}"
    scheme = uri.split("://", 1)[0]
    if scheme == "file":
        return ObjectStoragePath(uri)
    conn_id = conn_id or get_settings().storage_conn_id or _DEFAULT_CONN_BY_SCHEME.get(scheme)
    return ObjectStoragePath(uri, conn_id=conn_id)


def read_parquet(uri: str | ObjectStoragePath, conn_id: str | None = None, **kwargs) -> pd.DataFrame:
    """Read one Parquet file, or every ``*.parquet`` below a folder, into a DataFrame."""
    import pandas as pd

    path = uri if not isinstance(uri, str) else storage_path(uri, conn_id)
    if path.is_dir():
        # Like pyarrow's dataset discovery, skip names starting with "_" or "." (a partition's ``_versions``).
        files = sorted(
            p
            for p in path.rglob("*.parquet")
            if p.is_file() and not any(part[:1] in "_." for part in p.relative_to(path).parts)
        )
        if not files:
            return pd.DataFrame()
        return pd.concat([_read_one(p, **kwargs) for p in files], ignore_index=True)
    return _read_one(path, **kwargs)


def _read_one(path: ObjectStoragePath, **kwargs) -> pd.DataFrame:
    import pandas as pd

    with path.open("rb") as handle:
        return pd.read_parquet(io.BytesIO(handle.read()), **kwargs)


def write_bytes_atomic(data: bytes, uri: str | ObjectStoragePath, conn_id: str | None = None) -> ObjectStoragePath:
    """Write ``data`` to ``uri`` so that readers never see half a file (see :func:`write_stream_atomic`)."""
    return write_stream_atomic(io.BytesIO(data), uri, conn_id)


def write_stream_atomic(
    source: BinaryIO, uri: str | ObjectStoragePath, conn_id: str | None = None
) -> ObjectStoragePath:
    """Copy the readable binary stream ``source`` to ``uri`` so that readers never see half a file.

    On a filesystem the data goes to a temporary sibling that is then renamed over ``uri``. An object store
    (``s3://``, ``gs://``) publishes an object only once its upload completed, so there the object is written
    in place: a rename there is a copy and a delete, two more requests that add nothing (and Cloud Storage's
    ``moveTo``, which gcsfs tries first, is missing from its emulators).
    """
    target = uri if not isinstance(uri, str) else storage_path(uri, conn_id)
    if target.protocol not in ("", "file", "local"):
        with target.open("wb") as handle:
            shutil.copyfileobj(source, handle, _COPY_CHUNK)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    with tmp.open("wb") as handle:
        shutil.copyfileobj(source, handle, _COPY_CHUNK)
    tmp.rename(target)
    return target


def write_parquet_atomic(
    df: pd.DataFrame, uri: str | ObjectStoragePath, conn_id: str | None = None
) -> ObjectStoragePath:
    """Write ``df`` as Parquet to ``uri`` atomically (write a temporary file, then rename)."""
    return write_bytes_atomic(parquet_bytes(df), uri, conn_id)


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as Parquet bytes (deterministic: the same frame gives the same bytes, hence the same version)."""
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return buffer.getvalue()


def remove_file(uri: str | ObjectStoragePath, conn_id: str | None = None) -> bool:
    """Delete the file at ``uri`` if it exists; return whether there was one."""
    target = uri if not isinstance(uri, str) else storage_path(uri, conn_id)
    if not target.exists():
        return False
    target.unlink()
    return True
