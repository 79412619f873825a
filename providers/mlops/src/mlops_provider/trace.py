"""Walk one served request back to the data and code that made it.

request (the prediction log rows with its id: features as served, prediction, model version, latency; or the
batch-scored rows of a ``batch-...`` id: entity keys, timestamp, prediction) -> the
MLflow model version and its aliases -> the run that trained it (parameters, code version, Airflow run) -> the
training-set snapshot (content hash, rows, feature service, window, the partition versions it read when its
manifest records them) -> the validation report of each day of that window.

Used by ``python -m include.trace`` and by the MLOps page (``/mlops/?request_id=...``, ``/mlops/trace/<id>``).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from mlops_provider.names import safe_segment, zone_uri

#: Columns of the prediction log that are not features (the model server's prediction log contract).
LOG_COLUMNS = frozenset({"prediction", "model_version", "served_at", "request_id", "request_row", "latency_ms"})
CLASS_PROBABILITY_PREFIX = "prediction_class_"
PREDICTIONS_ZONE = "predictions"
#: Zone and id prefix of batch-scored rows (:mod:`mlops_provider.operators.batch_scoring` writes them).
BATCH_SCORES_ZONE = "batch_scores"
BATCH_REQUEST_PREFIX = "batch-"
VALIDATION_REPORTS_ZONE = "reports/validation"


class TraceError(LookupError):
    """The request cannot be traced (not in any prediction log searched)."""


def find_request(
    request_id: str, model: str | None = None, days: int | None = None, data_root: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Return ``(model name, logged rows)`` of ``request_id`` from the prediction logs under ``<data_root>``.

    :param model: search this model's log only (default: every model's).
    :param days: search only the newest ``days`` day folders of each log.
    :raises TraceError: when no log searched holds the id.
    """
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import read_parquet, storage_path

    data_root = data_root or get_settings().data_root
    # Batch-scored rows carry ids of their own (``batch-<model>-v<version>-<day>-<row>``), in their own zone.
    zone = BATCH_SCORES_ZONE if request_id.startswith(BATCH_REQUEST_PREFIX) else PREDICTIONS_ZONE
    root = storage_path(f"{data_root.rstrip('/')}/{zone}")
    if model:
        models = [safe_segment(model, "model name")]
    else:
        models = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
    for name in models:
        folder = root / name
        if not folder.exists():
            continue
        day_folders = sorted((p for p in folder.iterdir() if p.name.startswith("dt=")), key=lambda p: p.name)
        for day in reversed(day_folders[-days:] if days else day_folders):
            logged = read_parquet(day)
            if logged.empty or "request_id" not in logged.columns:
                continue  # no rows, or a log written before request ids
            rows = logged[logged["request_id"] == request_id].to_dict("records")
            if rows:
                return name, sorted(rows, key=lambda r: r.get("request_row") or 0)
    raise TraceError(
        f"Request {request_id!r} is in no prediction log under {root}"
        + (f" of model {model!r}" if model else "")
        + " (logs are written every few seconds; the id is the response's request_id / id)."
    )


def validation_reports(dataset: str, start: str, end: str, data_root: str) -> list[dict[str, Any]]:
    """The validation report of every day from ``start`` to ``end`` (``published`` None: no report)."""
    from mlops_provider.partitions import partition_uri
    from mlops_provider.storage import storage_path

    reports_zone = zone_uri(data_root, VALIDATION_REPORTS_ZONE, dataset)
    reports = []
    day, last = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
    while day <= last:
        report_uri = partition_uri(reports_zone, day, "report.json")
        path = storage_path(report_uri)
        report = json.loads(path.read_text()) if path.exists() else {}
        reports.append(
            {
                "day": day.isoformat(),
                "uri": report_uri,
                "published": report.get("published"),
                "input_rows": report.get("input_rows"),
                "valid_rows": report.get("valid_rows"),
            }
        )
        day += timedelta(days=1)
    return reports


def trace_request(request_id: str, model: str | None = None, days: int | None = None) -> dict[str, Any]:
    """Return the lineage of one served request (see the module docstring).

    ``training_set.partition_versions`` is what the snapshot's manifest records (None when it records none).
    ``links`` holds the MLflow UI URLs (None without an MLflow UI).

    :raises TraceError: when the request id is in no prediction log searched.
    """
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.lineage import GIT_COMMIT_TAG, IDEMPOTENCY_TAG, TRAINING_SET_HASH_TAG
    from mlops_provider.settings import get_settings

    data_root = get_settings().data_root
    model_name, rows = find_request(request_id, model, days, data_root)
    version = str(rows[0]["model_version"])
    hook = MlflowHook()
    client = hook.get_client()
    registered = client.get_model_version(model_name, version)
    if not registered.run_id:
        raise TraceError(f"Version {version} of {model_name} records no MLflow run: its training cannot be traced.")
    run = client.get_run(registered.run_id)
    uri, manifest = hook.training_set_of_run(registered.run_id)
    reports = []
    if manifest.get("dataset") and manifest.get("start") and manifest.get("end"):
        reports = validation_reports(manifest["dataset"], manifest["start"], manifest["end"], data_root)
    features = {k: v for k, v in rows[0].items() if k not in LOG_COLUMNS and not k.startswith(CLASS_PROBABILITY_PREFIX)}
    return {
        "request": {
            "request_id": request_id,
            "model_name": model_name,
            "served_at": None if rows[0].get("served_at") is None else str(rows[0]["served_at"]),  # None: batch
            "rows": len(rows),
            "latency_ms": rows[0].get("latency_ms"),
            "predictions": [r["prediction"] for r in rows],
            "features": features,
        },
        "model_version": {
            "version": version,
            "aliases": list(registered.aliases or []),
            "run_id": registered.run_id,
            "source": registered.source,
            "url": hook.model_version_url(model_name, version),
        },
        "run": {
            "params": dict(run.data.params),
            "code_version": run.data.tags.get(GIT_COMMIT_TAG),
            "idempotency_key": run.data.tags.get(IDEMPOTENCY_TAG),
            "airflow": {k: v for k, v in run.data.tags.items() if k.startswith("airflow.")},
            "url": hook.run_url(run.info.experiment_id, run.info.run_id),
        },
        "training_set": {
            "uri": uri,
            "hash": manifest.get("hash") or run.data.tags.get(TRAINING_SET_HASH_TAG),
            "rows": manifest.get("rows"),
            "dataset": manifest.get("dataset"),
            "window": [manifest.get("start"), manifest.get("end")],
            "feature_service": manifest.get("feature_service"),
            # {"validated/<dataset>/dt=D": version} the build read, and whether retention kept each version
            "partition_versions": _partition_versions(manifest["partition_versions"], data_root)
            if manifest.get("partition_versions")
            else None,
        },
        "validation_reports": reports,
    }


def _partition_versions(recorded: dict[str, str], data_root: str | None = None) -> list[dict[str, Any]]:
    """Each recorded partition version with its file and whether retention kept it (reproducible or not)."""
    from mlops_provider.partitions import current_version, parse_partition_key, version_uri
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import storage_path

    data_root = data_root or get_settings().data_root
    out = []
    for key, version in sorted(recorded.items()):
        zone, dataset, day = parse_partition_key(key)
        folder = zone_uri(data_root, zone, dataset)
        uri = version_uri(folder, day, version)
        out.append(
            {
                "partition": key,
                "version": version,
                "uri": uri,
                "exists": storage_path(uri).exists(),
                "current": current_version(folder, day) == version,
            }
        )
    return out
