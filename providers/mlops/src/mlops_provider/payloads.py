"""Typed shapes of what tasks hand each other through XCom, and the one parser for them.

XCom carries these payloads for convenience (templating, the UI); the system of record (registry,
object store, cluster) stays the truth, so every consumer can also rebuild them from there.
Templated inputs arrive either as the dict itself or as its JSON string (a rendered
``{{ ti.xcom_pull(...) }}``); :func:`parse_payload` accepts both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypedDict


class PayloadError(ValueError):
    """A task input is neither a mapping nor a JSON object."""


def parse_payload(value: Any, *, name: str = "input", required: bool = True) -> dict[str, Any]:
    """Return ``value`` as a dict: a mapping as is, a JSON object string decoded.

    :param value: a mapping, a JSON object string, or None/"" (only when ``required`` is False).
    :param name: what the value is, for the error message (e.g. ``"training_set"``).
    :param required: when False, None and "" give an empty dict.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise PayloadError(f"{name} is empty; pass the upstream task's output (a dict or its JSON).")
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str | bytes):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError as exc:
            raise PayloadError(
                f"{name} is not valid JSON ({exc.msg} at position {exc.pos}): {str(value)[:120]!r}"
            ) from None
        if not isinstance(decoded, dict):
            raise PayloadError(f"{name} must be a JSON object, got {type(decoded).__name__}.")
        return decoded
    raise PayloadError(f"{name} must be a dict or a JSON object string, got {type(value).__name__}.")


class TrainingSetManifest(TypedDict, total=False):
    """A point-in-time training-set snapshot; also written as ``<uri>/manifest.json``."""

    uri: str
    hash: str
    sha256: str
    rows: int
    #: Byte layout of ``data.parquet`` (the hash is over its bytes); absent: written before format 2.
    snapshot_format: int
    dataset: str
    start: str
    end: str
    label_column: str
    timestamp_column: str
    entity_columns: list[str]
    feature_columns: list[str]
    #: The string features (a subset of ``feature_columns``) the trainer learns as categoricals.
    categorical_columns: list[str]
    feature_refs: list[str]
    feature_service: str
    feast_project: str
    label_rate: float | None  # None for a text label
    created_at: str
    #: ``{"validated/<dataset>/dt=YYYY-MM-DD": version}`` of every partition the build read (see ``partitions``).
    partition_versions: dict[str, str]


class TrainingResult(TypedDict, total=False):
    """A registered model version and the run that trained it (the training operators' XCom)."""

    run_id: str
    experiment_id: str
    model_name: str
    model_version: str
    model_uri: str
    artifact_uri: str
    metrics: dict[str, float]
    threshold: float
    training_set_uri: str
    training_set_hash: str
    idempotency_key: str
    device: str
    reused: bool
    backend: str  # "local" | "kubernetes" | "vertex"
    pod_name: str  # kubernetes backend
    vertex_job_name: str  # vertex backend


class GateDecision(TypedDict, total=False):
    """The evaluation gate's verdict on a candidate version (also MLflow tags and ``gate/decision.json``)."""

    decision: str  # "promote" | "reject"
    reasons: list[str]
    model_name: str
    candidate_version: str
    champion_version: str | None
    candidate_metrics: dict[str, float]
    #: None when there is no champion or it cannot be scored on the window.
    champion_metrics: dict[str, float] | None
    #: Per-segment metrics (segment value -> metrics); None without a segment column.
    candidate_segments: dict[str, Any] | None
    champion_segments: dict[str, Any] | None
    feature_columns: list[str]
    checks: list[dict[str, Any]]
    criteria: dict[str, Any]
    #: The candidate's learning task (``binary``, ``multiclass``, ``regression``): which metrics were compared.
    task: str
    evaluation_window: dict[str, Any]
    model_uri: str
    artifact_uri: str
    run_id: str | None
    decided_at: str


class DeployResult(TypedDict, total=False):
    """What the deploy task rolled out and where it answers."""

    backend: str  # "local" | "kserve"
    #: The deployed version's task (``binary``, ``multiclass``, ``regression``).
    task: str
    model_name: str
    model_version: str
    endpoint_url: str
    status: str  # "promoted" | "rolled_back"
    strategy: str  # "create" | "canary" | "rolling" | "unchanged" | "blue_green"
    revision: str | None  # the serving revision (KServe) or colour (local) after the rollout
    protocol: str  # "v2"
    deployment_mode: str  # KServe's mode (Serverless, RawDeployment); absent for local
    traffic: dict[str, int]  # revision or colour -> percent
    previous_version: str | None
    analysis: dict[str, Any] | None
    reason: str  # why it was rolled back
    message: str


class DriftVerdict(TypedDict, total=False):
    """A drift check's verdict for one model and window."""

    drift_detected: bool
    drift_share: float
    drifted_features: list[str]
    reasons: list[str]
    model_name: str
    model_version: str
    current_start: str
    current_end: str
    report_uri: str
    summary_uri: str
    target_drifted: bool
    prediction_drifted: bool
    dataset_drift: bool
    performance_drop: float | None
    champion_version: str  # the version checked (same as model_version; the asset event's name for it)
    window: list[str]  # [current_start, current_end]
    reference_uri: str
    mlflow_run_id: str
    run_ts: str


class LivePerformanceVerdict(TypedDict, total=False):
    """The label feedback's verdict: the champion's live performance against its holdout score.

    Shaped like :class:`DriftVerdict` where they meet (``drift_detected``, ``reasons``, ``champion_version``,
    ``window``, ``summary_uri``), so the same tasks emit the drift asset event and the alert.
    """

    drift_detected: bool  # the live metric dropped by more than max_performance_drop
    reasons: list[str]
    model_name: str
    model_version: str
    champion_version: str
    window: list[str]  # [first prediction day, last day]
    summary_uri: str
    live_performance: dict[str, Any]  # status, reason, metric, reference (holdout), live, drop, labeled_rows, ...
    counts: dict[str, int]  # predictions, labeled, unlabeled, labels, unmatched_labels, duplicate_labels
