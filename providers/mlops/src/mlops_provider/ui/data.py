"""What the MLOps page shows, gathered from the MLflow registry and the drift summaries in the data store.

Registry: per model, the latest versions with their aliases (``champion``/``challenger``), every tag of
each version and the lineage/gate/deployment tags of its training run, read generically (whatever
keys the training and serving code wrote), and the metrics of its run. Rollouts: the events
:mod:`mlops_provider.serving.records` keeps per rollout (phases, canary analysis steps, shadow comparisons, approvals,
result), summarised by :func:`collect_rollouts`. Drift: the ``summary.json`` of each drift check under
``<data_root>/reports/drift/<model>/``. Live performance: the ``metrics.json`` of each prediction day under
``<data_root>/live_performance/<model>/`` (delayed labels joined by ``LabelFeedbackOperator``). Cold starts: the
local endpoint's record of each wake of a model scaled to zero (:meth:`~mlops_provider.serving.local.LocalEndpoint.cold_starts`).
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from mlops_provider.lineage import GATE_DECISION_TAG, ROLLOUT_STATUS_TAG

if TYPE_CHECKING:
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.settings import MlopsSettings

log = logging.getLogger(__name__)

#: A model name or drift run id as a single path segment: no leading dot, no ``..``, no separators.
SAFE_NAME = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,199}$")
#: The files of a drift check the page serves.
REPORT_FILES = ("report.html", "summary.json")
# Run/version tag keys shown as gate decisions or deployment state (matched case-insensitively).
GATE_KEYS = re.compile(r"gate|decision|reason|promot|reject", re.IGNORECASE)
DEPLOY_KEYS = re.compile(r"deploy|rollout|endpoint|serving|revision|traffic", re.IGNORECASE)
MAX_VERSIONS = 10
MAX_DRIFT_POINTS = 60
MAX_LIVE_DAYS = 60
MAX_ROLLOUTS = 5
MAX_COLD_STARTS = 20


def _version_sort_key(version: Any) -> int:
    try:
        return int(version.version)
    except (TypeError, ValueError):
        return -1


def collect_models(hook: MlflowHook, only: str | None = None) -> list[dict[str, Any]]:
    """Registered models with their latest versions, aliases and tags (newest version first)."""
    client = hook.get_client()
    if only:
        models = [client.get_registered_model(only)]
    else:
        models = list(client.search_registered_models(max_results=100))
    out = []
    for model in sorted(models, key=lambda m: m.name):
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases_by_version.setdefault(str(version), []).append(alias)
        escaped = model.name.replace("'", "\\'")
        versions = sorted(
            client.search_model_versions(f"name='{escaped}'", max_results=200), key=_version_sort_key, reverse=True
        )[:MAX_VERSIONS]
        rows = []
        for version in versions:
            run_tags: dict[str, str] = {}
            run_metrics: dict[str, float] = {}
            run_url = None
            if version.run_id:
                try:
                    run = client.get_run(version.run_id)
                    run_tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
                    run_metrics = {k: float(v) for k, v in (run.data.metrics or {}).items()}
                    run_url = hook.run_url(run.info.experiment_id, run.info.run_id)
                except Exception as err:  # a deleted run must not break the page
                    log.info("Run %s of %s v%s is not readable: %s", version.run_id, model.name, version.version, err)
            tags = {**run_tags, **dict(version.tags or {})}
            rows.append(
                {
                    "version": str(version.version),
                    "aliases": sorted(aliases_by_version.get(str(version.version), [])),
                    "status": str(getattr(version, "status", "") or ""),
                    "created": getattr(version, "creation_timestamp", None),
                    "run_id": version.run_id,
                    "run_url": run_url,
                    "version_url": hook.model_version_url(model.name, version.version),
                    "gate": {k: v for k, v in sorted(tags.items()) if GATE_KEYS.search(k)},
                    "deployment": {k: v for k, v in sorted(tags.items()) if DEPLOY_KEYS.search(k)},
                    "gate_decision": tags.get(GATE_DECISION_TAG),
                    "rollout_status": tags.get(ROLLOUT_STATUS_TAG),
                    "metrics": dict(sorted(run_metrics.items())),
                    "tags": dict(sorted(tags.items())),
                }
            )
        last_gate = next((r for r in rows if r["gate"]), None)
        out.append(
            {
                "name": model.name,
                "aliases": dict(sorted((model.aliases or {}).items())),
                "versions": rows,
                "last_gate": {"version": last_gate["version"], "tags": last_gate["gate"]} if last_gate else None,
            }
        )
    return out


def is_safe_name(name: str) -> bool:
    """Whether ``name`` can be used as one path segment under the reports folder."""
    return bool(SAFE_NAME.match(name))


def report_file_uri(data_root: str, model_name: str, run_ts: str, filename: str) -> str | None:
    """URI of a drift check's file, or None when any part would leave ``<data_root>/reports/drift/``.

    Names are checked (:data:`SAFE_NAME`) and the normalised path must stay under the reports root, so
    ``..``, absolute paths and separators never reach the store.
    """
    import posixpath

    if filename not in REPORT_FILES or not (is_safe_name(model_name) and is_safe_name(run_ts)):
        return None
    root = f"{data_root.rstrip('/')}/reports/drift"
    scheme, sep, rest = root.partition("://")
    if not sep:
        scheme, rest = "", root
    base = posixpath.normpath(rest)
    candidate = posixpath.normpath(posixpath.join(base, model_name, run_ts, filename))
    if posixpath.dirname(posixpath.dirname(posixpath.dirname(candidate))) != base:
        return None
    if scheme in ("", "file"):
        from pathlib import Path

        if not Path(candidate).resolve().is_relative_to(Path(base).resolve()):  # a symlink out of the root
            return None
    return f"{scheme}://{candidate}" if sep else candidate


def collect_drift(data_root: str, model_name: str) -> list[dict[str, Any]]:
    """Drift-check summaries of ``model_name``, oldest first (at most the latest ``MAX_DRIFT_POINTS``)."""
    from mlops_provider.storage import storage_path

    if not is_safe_name(model_name):
        return []
    folder = storage_path(f"{data_root.rstrip('/')}/reports/drift/{model_name}")
    if not folder.exists():
        return []
    points = []
    for run_dir in sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name)[-MAX_DRIFT_POINTS:]:
        summary_path = run_dir / "summary.json"
        if not summary_path.exists():
            continue
        try:
            summary = json.loads(summary_path.read_text())
        except (ValueError, OSError) as err:
            log.info("Skipping unreadable drift summary %s: %s", summary_path, err)
            continue
        points.append(
            {
                "run_ts": run_dir.name,
                "checked_at": summary.get("checked_at"),
                "drift_share": float(summary.get("drift_share") or 0.0),
                "policy_share": float((summary.get("policy") or {}).get("drift_share") or 0.5),
                "drift_detected": bool(summary.get("drift_detected")),
                "drifted_features": list(summary.get("drifted_features") or []),
                "reasons": list(summary.get("reasons") or []),
                "champion_version": summary.get("champion_version"),
                "window": summary.get("window") or {},
                "mlflow_run_id": summary.get("mlflow_run_id"),
                "mlflow_run_url": summary.get("mlflow_run_url"),
            }
        )
    return points


def collect_live_performance(data_root: str, model_name: str) -> list[dict[str, Any]]:
    """Live performance of ``model_name`` per prediction day and version, oldest day first (the latest ``MAX_LIVE_DAYS``).

    Each row: ``day``, ``model_version``, ``metric``, ``value`` (None: undefined, e.g. no labels yet),
    ``labeled_rows``, ``unlabeled_rows`` and ``labels_through`` (the last label arrival day it includes).
    """
    from mlops_provider.drift.labels import LIVE_PERFORMANCE_ZONE, METRICS_FILE
    from mlops_provider.storage import storage_path

    if not is_safe_name(model_name):
        return []
    folder = storage_path(f"{data_root.rstrip('/')}/{LIVE_PERFORMANCE_ZONE}/{model_name}")
    if not folder.exists():
        return []
    days = sorted((p for p in folder.iterdir() if p.is_dir() and p.name.startswith("dt=")), key=lambda p: p.name)
    rows: list[dict[str, Any]] = []
    for day_dir in days[-MAX_LIVE_DAYS:]:
        metrics_path = day_dir / METRICS_FILE
        if not metrics_path.exists():
            continue
        try:
            metrics = json.loads(metrics_path.read_text())
        except (ValueError, OSError) as err:
            log.info("Skipping unreadable live performance %s: %s", metrics_path, err)
            continue
        for record in sorted(metrics.get("versions") or [], key=lambda r: _version_number(r.get("model_version"))):
            rows.append({**record, "labels_through": metrics.get("labels_through")})
    return rows


def _version_number(version: Any) -> int:
    try:
        return int(version)
    except (TypeError, ValueError):
        return -1


def _step(event: dict[str, Any]) -> int:
    try:
        return int(event["details"].get("step", event["key"]))
    except (TypeError, ValueError):
        return -1


def summarize_rollout(rollout: dict[str, Any]) -> dict[str, Any]:
    """One rollout of :func:`~mlops_provider.serving.records.read_rollouts` as the page shows it.

    ``phase``/``weight`` (the last phase event, else the last analysis step's weight), ``analysis`` (steps in
    order), ``shadow``, ``approval`` (the latest), ``result``, ``state`` (the result's outcome, ``awaiting
    approval``, or the phase) and ``timeline`` (every event in the order it happened).
    """
    from mlops_provider.serving.records import ANALYSIS, APPROVAL, PHASE, RESULT, SHADOW

    events = rollout["events"]

    def of(kind: str) -> list[dict[str, Any]]:
        return [e for e in events if e.get("kind") == kind]

    phases, shadows, approvals, results = of(PHASE), of(SHADOW), of(APPROVAL), of(RESULT)
    analysis = sorted(of(ANALYSIS), key=_step)
    last_phase = phases[-1]["details"] if phases else {}
    weight = last_phase.get("weight")
    if weight is None and analysis:
        weight = analysis[-1]["details"].get("weight")
    approval = {**approvals[-1]["details"], "at": approvals[-1]["at"]} if approvals else None
    result = {**results[-1]["details"], "at": results[-1]["at"]} if results else None
    if result is not None:
        state = str(result.get("outcome"))
    elif approval is not None and approval.get("state") == "pending":
        state = "awaiting approval"
    else:
        state = str(last_phase.get("phase") or ("analysing" if analysis else "started"))
    return {
        "rollout_id": rollout["rollout_id"],
        "version": rollout["version"],
        "started_at": rollout["started_at"],
        "updated_at": events[-1]["at"] if events else rollout["started_at"],
        "phase": last_phase.get("phase"),
        "weight": weight,
        "message": last_phase.get("message"),
        "analysis": [{**e["details"], "at": e["at"]} for e in analysis],
        "shadow": [{**e["details"], "at": e["at"]} for e in shadows],
        "approval": approval,
        "result": result,
        "state": state,
        "active": result is None,
        "timeline": [
            {"kind": e.get("kind"), "key": e.get("key"), "at": e.get("at"), "details": e.get("details")} for e in events
        ],  # fmt: skip
    }


def collect_rollouts(data_root: str, model_name: str, limit: int = MAX_ROLLOUTS) -> list[dict[str, Any]]:
    """The model's latest rollouts, newest first, summarised (:func:`summarize_rollout`).

    An approval asked before its rollout started (the approval step records under the gate's decision) is shown
    on the rollout of the same version that followed it, when that rollout recorded no approval of its own.
    """
    from mlops_provider.serving.records import APPROVAL, RESULT, read_rollouts

    if not is_safe_name(model_name):
        return []
    rollouts = read_rollouts(model_name, limit=limit * 2, data_root=data_root)
    merged = sorted(rollouts, key=lambda r: r["started_at"])
    # Oldest first: attach an approval-only rollout to the next rollout of its version that has no approval.
    kept: list[dict[str, Any]] = []
    for i, rollout in enumerate(merged):
        kinds = {e.get("kind") for e in rollout["events"]}
        if kinds <= {APPROVAL, RESULT}:
            follower = next(
                (
                    r
                    for r in merged[i + 1 :]
                    if r["version"] == rollout["version"] and APPROVAL not in {e.get("kind") for e in r["events"]}
                ),
                None,
            )
            if follower is not None:
                approvals = [e for e in rollout["events"] if e.get("kind") == APPROVAL]
                follower["events"] = sorted([*approvals, *follower["events"]], key=lambda e: e["at"])
                continue
        kept.append(rollout)
    kept.sort(key=lambda r: r["started_at"], reverse=True)
    return [summarize_rollout(r) for r in kept[:limit]]


def collect_cold_starts(settings: MlopsSettings, model_name: str, limit: int = MAX_COLD_STARTS) -> list[dict[str, Any]]:
    """The model's latest wakes from scale to zero on the local endpoint, oldest first (empty when none)."""
    from mlops_provider.serving.local import LocalEndpoint

    if not is_safe_name(model_name):
        return []
    return LocalEndpoint(settings=settings).cold_starts(model_name)[-limit:]
