"""``python -m include.trace <request_id>``: which data and code made this prediction.

Walks one served request back through the systems of record: the prediction log row(s) with that request id
(``<data_root>/predictions/<model>/``: features as served, prediction, model version, latency) -> the MLflow
model version and its aliases -> the run that trained it (parameters, code version, Airflow run) -> the
training-set snapshot (content hash, rows, feature service, window, and the version of every data partition
it read, with whether that version still exists) -> the validation report of each day of that window. Prints one JSON document; exits 2 with a message when the request id is in no log.

Options: ``--model <name>`` searches one model's log only; ``--days N`` only the newest N days of logs.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, timedelta
from typing import Any


class TraceError(LookupError):
    """The request cannot be traced (not in any prediction log searched)."""


def find_request(request_id: str, model: str | None = None, days: int | None = None) -> tuple[str, list[dict]]:
    """Return ``(model name, logged rows)`` of ``request_id`` from the prediction logs under ``<data_root>``."""
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import read_parquet, storage_path

    root = storage_path(f"{get_settings().data_root.rstrip('/')}/predictions")
    models = [model] if model else sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
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


def trace(request_id: str, model: str | None = None, days: int | None = None) -> dict[str, Any]:
    """Return the lineage of one served request (see the module docstring)."""
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.lineage import GIT_COMMIT_TAG, IDEMPOTENCY_TAG, TRAINING_SET_HASH_TAG
    from mlops_provider.names import zone_uri
    from mlops_provider.partitions import partition_uri
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import storage_path

    model_name, rows = find_request(request_id, model, days)
    version = str(rows[0]["model_version"])
    hook = MlflowHook()
    client = hook.get_client()
    registered = client.get_model_version(model_name, version)
    run = client.get_run(registered.run_id)
    uri, manifest = hook.training_set_of_run(registered.run_id)
    reports = []
    if manifest.get("dataset") and manifest.get("start") and manifest.get("end"):
        reports_zone = zone_uri(get_settings().data_root, "reports/validation", manifest["dataset"])
        day, last = date.fromisoformat(manifest["start"][:10]), date.fromisoformat(manifest["end"][:10])
        while day <= last:
            report_uri = partition_uri(reports_zone, day, "report.json")
            path = storage_path(report_uri)
            report = json.loads(path.read_text()) if path.exists() else None
            reports.append(
                {
                    "day": day.isoformat(),
                    "uri": report_uri,
                    "published": None if report is None else report.get("published"),
                    "input_rows": None if report is None else report.get("input_rows"),
                    "valid_rows": None if report is None else report.get("valid_rows"),
                }
            )
            day += timedelta(days=1)
    features = {k: v for k, v in rows[0].items() if k not in _LOG_COLUMNS and not k.startswith("prediction_class_")}
    return {
        "request": {
            "request_id": request_id,
            "model_name": model_name,
            "served_at": str(rows[0]["served_at"]),
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
        },
        "run": {
            "params": dict(run.data.params),
            "code_version": run.data.tags.get(GIT_COMMIT_TAG),
            "idempotency_key": run.data.tags.get(IDEMPOTENCY_TAG),
            "airflow": {k: v for k, v in run.data.tags.items() if k.startswith("airflow.")},
        },
        "training_set": {
            "uri": uri,
            "hash": manifest.get("hash") or run.data.tags.get(TRAINING_SET_HASH_TAG),
            "rows": manifest.get("rows"),
            "dataset": manifest.get("dataset"),
            "window": [manifest.get("start"), manifest.get("end")],
            "feature_service": manifest.get("feature_service"),
            # {"validated/<dataset>/dt=D": version} the build read, and whether each version still exists
            "partition_versions": _partition_versions(manifest.get("partition_versions") or {}),
        },
        "validation_reports": reports,
    }


def _partition_versions(recorded: dict[str, str]) -> list[dict[str, Any]]:
    """Each recorded partition version with its file and whether retention kept it (reproducible or not)."""
    from mlops_provider.names import zone_uri
    from mlops_provider.partitions import current_version, parse_partition_key, version_uri
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import storage_path

    out = []
    for key, version in sorted(recorded.items()):
        zone, dataset, day = parse_partition_key(key)
        folder = zone_uri(get_settings().data_root, zone, dataset)
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


#: Columns of the prediction log that are not features (see kserve/mlops_serving/prediction_log.py).
_LOG_COLUMNS = {"prediction", "model_version", "served_at", "request_id", "request_row", "latency_ms"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.trace", description=__doc__.split("\n\n")[0])
    parser.add_argument("request_id")
    parser.add_argument("--model", default=None, help="search this model's prediction log only")
    parser.add_argument("--days", type=int, default=None, help="search only the newest N days of logs")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(trace(args.request_id, args.model, args.days), indent=2, default=str))
    except TraceError as err:
        print(str(err), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
