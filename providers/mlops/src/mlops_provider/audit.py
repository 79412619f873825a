"""Audit log of model decisions: who or what decided, when, why, with links to the evidence.

Every gate decision, approval, promotion, rollback, retraining trigger and retraining (cooldown) decision is
one immutable JSON object in the data store::

    <data_root>/audit/<model>/dt=YYYY-MM-DD/<kind>-<entry id>.json

The entry id is a digest of a key that names the decision, never the try: for a task, its DAG, run, task and
map index plus the kind and the decision's subject (e.g. the candidate version). A retried or re-run task
therefore rewrites its own entry instead of adding a second, and two tasks deciding at the same time write
two different files (no shared file is read, changed and written back, so no entry is lost in a race). The
folder is the UTC day of the decision; a retry that crosses midnight leaves a copy in the earlier day, which
:func:`read_audit` drops (one entry per id, the latest decision wins).

Entries (``schema`` 1): ``id``, ``kind`` (:data:`KINDS`), ``model``, ``outcome`` (``promote``/``reject``,
``approved``/``rejected``/``timed_out``, ``promoted``, ``rolled_back``, ``drift_detected``, ``proceed``/``skip``), ``at`` (ISO
UTC), ``actor`` (the Airflow task, its DAG run and the user who triggered it, or whoever called without a
task), ``reason``, ``details`` and ``links`` (name -> URL: the Airflow task instance, MLflow run and model
version, reports).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mlops_provider.names import safe_segment

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.mlflow import MlflowHook

log = logging.getLogger(__name__)

AUDIT_ZONE = "audit"
SCHEMA_VERSION = 1

GATE_DECISION = "gate_decision"
APPROVAL = "approval"
PROMOTION = "promotion"
ROLLBACK = "rollback"
RETRAINING_TRIGGER = "retraining_trigger"
RETRAINING_DECISION = "retraining_decision"
#: Every kind of entry, in the order a model's decisions usually happen.
KINDS = (RETRAINING_TRIGGER, RETRAINING_DECISION, GATE_DECISION, APPROVAL, PROMOTION, ROLLBACK)


class AuditError(ValueError):
    """An audit entry cannot be written as asked (unknown kind, no key and no task context)."""


def audit_root(data_root: str | None = None) -> str:
    """``<data_root>/audit``."""
    if data_root is None:
        from mlops_provider.settings import get_settings

        data_root = get_settings().data_root
    return f"{data_root.rstrip('/')}/{AUDIT_ZONE}"


def task_key(context: Context) -> str:
    """The key of the running task instance: DAG, run, task and map index; the same on every try."""
    ti = context["ti"]
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"


def task_actor(context: Context) -> dict[str, Any]:
    """Who decided: the Airflow task instance, its run type and the user who triggered the run (if any)."""
    ti = context["ti"]
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    return {
        "type": "airflow_task",
        "name": f"{ti.dag_id}/{ti.run_id}/{ti.task_id}",
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": getattr(ti, "map_index", -1),
        "try_number": getattr(ti, "try_number", None),
        "run_type": str(getattr(run_type, "value", run_type) or "") or None,
        "triggered_by_user": getattr(dag_run, "triggering_user_name", None),
    }


def task_instance_url(context: Context) -> str:
    """The task instance's page in the Airflow UI (no try number: the same link on every try)."""
    from mlops_provider.links.evidently import api_base_url

    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    mapped = f"/mapped/{map_index}" if map_index is not None and map_index >= 0 else ""
    return f"{api_base_url()}/dags/{quote(ti.dag_id)}/runs/{quote(ti.run_id)}/tasks/{quote(ti.task_id)}{mapped}"


def mlflow_links(
    hook: MlflowHook, model_name: str, version: str | int | None, run: Any = None
) -> dict[str, str | None]:
    """The MLflow UI links of a version and its run (empty when MLflow has no UI, e.g. the local store)."""
    links: dict[str, str | None] = {}
    if version is not None:
        links["mlflow_model_version"] = hook.model_version_url(model_name, version)
    if run is not None:
        links["mlflow_run"] = hook.run_url(run.info.experiment_id, run.info.run_id)
    return links


def entry_id(key: str, kind: str, subject: str = "") -> str:
    """The deterministic id of the entry ``key`` records for ``kind`` and ``subject``."""
    return hashlib.sha256(f"{key}\n{kind}\n{subject}".encode()).hexdigest()[:24]


def record_audit(
    kind: str,
    model_name: str,
    *,
    outcome: str,
    reason: str,
    context: Context | None = None,
    subject: str | int | None = None,
    details: dict[str, Any] | None = None,
    links: dict[str, str | None] | None = None,
    key: str | None = None,
    actor: dict[str, Any] | None = None,
    data_root: str | None = None,
) -> dict[str, Any]:
    """Write one audit entry (replacing the one the same key wrote before) and return it.

    :param kind: one of :data:`KINDS`.
    :param model_name: the model decided about (one path segment).
    :param outcome: the decision in one word (``promote``, ``reject``, ``proceed``, ``approved``...).
    :param reason: why, in words a reviewer can act on.
    :param context: the Airflow task context: gives the key (:func:`task_key`), the actor (:func:`task_actor`) and
        the task instance link. Without it, pass ``key`` and ``actor`` (e.g. a person approving from a script).
    :param subject: what inside the task was decided (a model version), so one task may record several entries.
    :param details: JSON-serialisable facts behind the decision (metrics, criteria, window, versions).
    :param links: name -> URL of the evidence; None values are dropped.
    :param key: the decision's idempotency key when there is no ``context`` (never a try number).
    :param actor: who decided when there is no ``context`` (``{"type": "user", "name": ...}``).
    :param data_root: default ``[mlops] data_root``.
    :raises AuditError: for an unknown kind, or neither ``context`` nor ``key`` and ``actor``.
    """
    from mlops_provider.storage import write_bytes_atomic

    if kind not in KINDS:
        raise AuditError(f"Unknown audit kind {kind!r}; use one of {list(KINDS)}.")
    model = safe_segment(model_name, "model name")
    if context is not None:
        key = key or task_key(context)
        actor = actor or task_actor(context)
        links = {"airflow_task": task_instance_url(context), **(links or {})}
    if not key or not actor:
        raise AuditError(f"An audit entry of {kind} for {model} needs the task context, or both key and actor.")
    at = datetime.now(UTC)
    entry = {
        "schema": SCHEMA_VERSION,
        "id": entry_id(key, kind, "" if subject is None else str(subject)),
        "kind": kind,
        "model": model,
        "outcome": outcome,
        "at": at.isoformat(),
        "actor": actor,
        "reason": reason,
        "subject": None if subject is None else str(subject),
        "details": details or {},
        "links": {name: url for name, url in (links or {}).items() if url},
    }
    body = json.dumps(entry, sort_keys=True, default=str).encode()
    uri = f"{audit_root(data_root)}/{model}/dt={at:%Y-%m-%d}/{kind}-{entry['id']}.json"
    write_bytes_atomic(body, uri)
    log.info("Audit: %s of %s: %s (%s) by %s", kind, model, outcome, reason[:300], actor.get("name"))
    return json.loads(body)


def _as_utc(value: datetime | date | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def audited_models(data_root: str | None = None) -> list[str]:
    """Names of the models with an audit folder."""
    from mlops_provider.storage import storage_path

    root = storage_path(audit_root(data_root))
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def read_audit(
    model_name: str | None = None,
    *,
    since: datetime | date | str | None = None,
    limit: int | None = None,
    data_root: str | None = None,
) -> list[dict[str, Any]]:
    """Audit entries of ``model_name`` (None: every model), newest first, decided at or after ``since``.

    Day folders are read newest first and reading stops once ``limit`` entries are found; one entry per id
    (a retry that crossed midnight left an older copy in the day before). Unreadable files are skipped.
    """
    from mlops_provider.storage import storage_path

    start = _as_utc(since) if since is not None else None
    # A folder holds the decisions of its day: earlier days cannot hold entries from ``since`` on.
    first_day = start.date() if start else date.min
    models = [safe_segment(model_name, "model name")] if model_name else audited_models(data_root)
    folders = []
    for model in models:
        base = storage_path(f"{audit_root(data_root)}/{model}")
        if base.exists():
            folders += [p for p in base.iterdir() if p.is_dir() and p.name.startswith("dt=")]
    seen: dict[str, dict[str, Any]] = {}
    day_read = None
    for folder in sorted(folders, key=lambda p: p.name, reverse=True):
        try:
            if date.fromisoformat(folder.name[3:]) < first_day:
                continue
        except ValueError:
            continue
        # Every model's folder of a day is read before stopping: any of them may hold that day's newest entries.
        if limit is not None and len(seen) >= limit and folder.name != day_read:
            break
        day_read = folder.name
        for path in folder.iterdir():
            if not path.name.endswith(".json") or path.name.startswith("."):
                continue
            try:
                entry = json.loads(path.read_text())
            except (ValueError, OSError) as err:
                log.warning("Skipping unreadable audit entry %s: %s", path, err)
                continue
            if start is not None and _as_utc(entry["at"]) < start:
                continue
            kept = seen.get(entry["id"])
            if kept is None or entry["at"] > kept["at"]:
                seen[entry["id"]] = entry
    entries = sorted(seen.values(), key=lambda e: (e["at"], e["id"]), reverse=True)
    return entries[:limit] if limit is not None else entries


def export_jsonl(
    model_name: str | None = None, *, since: datetime | date | str | None = None, data_root: str | None = None
) -> Iterator[str]:
    """The audit log as JSON lines, oldest first (one entry per line, each ending in a newline)."""
    for entry in reversed(read_audit(model_name, since=since, data_root=data_root)):
        yield json.dumps(entry, sort_keys=True, default=str) + "\n"
