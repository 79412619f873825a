"""Buffered log of served requests and predictions, written as Parquet for drift monitoring.

Layout (the team contract): ``<base_uri>/dt=YYYY-MM-DD/<uuid>.parquet`` with the feature columns, ``prediction``,
``model_version``, ``served_at`` (UTC), ``request_id`` (the id the response carries; every row of a batch shares
it, ``request_row`` numbers them) and ``latency_ms`` (the server's time for the request's batch). ``base_uri``
is ``<data_root>/predictions/<model_name>``.
A categorical feature is logged as its category (the text the model saw; null for a missing, unseen or null value),
so the drift check compares it with the training set's strings. ``prediction`` is the positive-class probability
(binary) or the value (regression); for a multiclass model it is the arg-max class index, and
``prediction_class_<k>`` holds the probability of class ``k``.
The request path only appends NumPy arrays to a list under a lock; a background thread writes a file when
``flush_rows`` rows are buffered or every ``flush_seconds``, and ``close()`` writes what is left.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

logger = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"
#: Column prefix of a multiclass model's per-class probabilities (``prediction_class_0``, ...); the drift check
#: (mlops_provider.drift.check.CLASS_PROBABILITY_PREFIX) reads the same names.
CLASS_PROBABILITY_PREFIX = "prediction_class_"


class PredictionLogger:
    """Buffer ``(features, predictions)`` batches in memory and write them as Parquet files.

    :param base_uri: ``file://``, local path, ``s3://`` or ``gs://`` folder for this model's predictions.
    :param feature_names: column names of the feature matrix, in order.
    :param model_version: value of the ``model_version`` column.
    :param categories: frozen categories of the categorical features (their columns hold codes in the matrix).
    :param flush_rows: write a file once this many rows are buffered.
    :param flush_seconds: write buffered rows at least this often.
    """

    def __init__(
        self,
        base_uri: str,
        feature_names: Sequence[str],
        model_version: str,
        *,
        categories: dict[str, list[str]] | None = None,
        flush_rows: int = 1000,
        flush_seconds: float = 10.0,
    ) -> None:
        self.base_uri = base_uri.rstrip("/")
        self.feature_names = list(feature_names)
        self.model_version = model_version
        self.categories = dict(categories or {})
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.files_written: list[str] = []
        self._lock = threading.Lock()
        self._chunks: list[tuple[np.ndarray, np.ndarray, float, str, float]] = []
        self._rows = 0
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def log(
        self, features: np.ndarray, predictions: np.ndarray, request_id: str = "", latency_ms: float = float("nan")
    ) -> None:
        """Buffer one served batch (cheap: no I/O on the request path)."""
        with self._lock:
            self._chunks.append((features, predictions, time.time(), request_id, latency_ms))
            self._rows += len(predictions)
            if self._rows >= self.flush_rows:
                self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # keep serving even if the log store is unavailable; the error is logged
                logger.exception("Could not write the prediction log to %s", self.base_uri)

    def flush(self) -> list[str]:
        """Write everything buffered so far; return the URIs of the files written."""
        with self._lock:
            chunks, self._chunks, self._rows = self._chunks, [], 0
        if not chunks:
            return []
        import pyarrow as pa

        features = np.concatenate([c[0] for c in chunks]).astype(np.float64, copy=False)
        # [n] scores, or [n, classes] probabilities of a multiclass model (logged per class, plus the arg-max).
        predictions = np.concatenate([np.asarray(c[1], dtype=np.float64).reshape(len(c[1]), -1) for c in chunks])
        per_class = predictions.shape[1] > 1
        served_at = np.concatenate([np.full(len(c[1]), c[2]) for c in chunks])
        request_ids = np.concatenate([np.full(len(c[1]), c[3], dtype=object) for c in chunks])
        rows = np.concatenate([np.arange(len(c[1]), dtype=np.int64) for c in chunks])
        latencies = np.concatenate([np.full(len(c[1]), c[4], dtype=np.float64) for c in chunks])
        stamps = (served_at * 1_000_000).astype("int64").astype("datetime64[us]")
        days = stamps.astype("datetime64[D]")
        written = []
        for day in np.unique(days):
            mask = days == day
            columns = {name: self._column(name, features[mask, i]) for i, name in enumerate(self.feature_names)}
            if per_class:
                columns[PREDICTION_COLUMN] = pa.array(predictions[mask].argmax(axis=1).astype(np.float64))
                for k in range(predictions.shape[1]):
                    columns[f"{CLASS_PROBABILITY_PREFIX}{k}"] = pa.array(predictions[mask, k])
            else:
                columns[PREDICTION_COLUMN] = pa.array(predictions[mask, 0])
            columns["model_version"] = pa.array([self.model_version] * int(mask.sum()), pa.string())
            columns["served_at"] = pa.array(stamps[mask], pa.timestamp("us", tz="UTC"))
            columns["request_id"] = pa.array(request_ids[mask].tolist(), pa.string())
            columns["request_row"] = pa.array(rows[mask])
            columns["latency_ms"] = pa.array(latencies[mask])
            uri = f"{self.base_uri}/dt={day}/{uuid.uuid4().hex}.parquet"
            self._write(pa.table(columns), uri)
            written.append(uri)
        self.files_written.extend(written)
        logger.info("Wrote %d prediction log rows to %s", len(predictions), ", ".join(written))
        return written

    def _column(self, name: str, values: np.ndarray):
        """A feature column: numbers as logged; a categorical feature's codes as their categories (null: missing)."""
        import pyarrow as pa

        categories = self.categories.get(name)
        if categories is None:
            return pa.array(values)
        return pa.array([None if np.isnan(v) else categories[int(v)] for v in values], pa.string())

    @staticmethod
    def _write(table, uri: str) -> None:
        import pyarrow.parquet as pq

        parsed = urlparse(uri)
        if parsed.scheme in ("", "file"):
            path = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Readers list the folder while we write: write a hidden temp file and rename it into place.
            tmp = path.with_name(f".{path.name}.tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, path)
            return
        from pyarrow import fs as pafs

        filesystem, path = pafs.FileSystem.from_uri(uri)
        with filesystem.open_output_stream(path) as out:  # object stores publish the object on close
            pq.write_table(table, out)

    def close(self) -> None:
        """Stop the background writer and write what is still buffered."""
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()

    @staticmethod
    def today() -> str:
        """Today's partition name (UTC), as the files are partitioned."""
        return datetime.now(UTC).strftime("%Y-%m-%d")
