"""What a rollout did, step by step, where the MLOps page reads it.

A rollout (one candidate version going live, by canary, blue-green or shadow -> canary -> full) is a folder of
immutable JSON events in the data store::

    <data_root>/rollouts/<model>/<rollout id>/<kind>-<key>.json

The rollout id names the rollout, never the deploy task's try: a retried deploy that resumes the same rollout
writes into the same folder, and an event's key (its step, its phase) makes a rewrite replace the event instead of
adding a second. Two rollouts never share a file, so nothing is read, changed and written back.

Event kinds (:data:`EVENT_KINDS`) and their ``details``:

- ``phase``: ``{"phase": <RolloutPhase value or "shadow">, "weight": <canary percent or None>, "message": str}``.
- ``analysis``: one analysis step: ``{"step": int, "weight": int | None, "source": "prometheus" | "prediction_log"
  | "probes", "window_seconds": float, "verdict": "pass" | "fail" | "inconclusive", "metrics": [{"name": str,
  "value": float | None, "threshold": float | None, "passed": bool | None, "stable": float | None, "canary":
  float | None}], "message": str}``.
- ``shadow``: a shadow comparison: ``{"requests": int, "agreement": float | None, "divergence": float | None,
  "latency_ratio": float | None, "verdict": ..., "message": str}``.
- ``approval``: ``{"state": "pending" | "approved" | "rejected" | "timed_out", "url": str | None, "by": str |
  None, "comment": str | None}``.
- ``result``: how it ended: ``{"outcome": "promoted" | "rolled_back" | "rejected" | "failed", "message": str}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from mlops_provider.names import safe_segment

log = logging.getLogger(__name__)

ROLLOUTS_ZONE = "rollouts"
SCHEMA_VERSION = 1

PHASE = "phase"
ANALYSIS = "analysis"
SHADOW = "shadow"
APPROVAL = "approval"
RESULT = "result"
#: Every kind of rollout event.
EVENT_KINDS = (PHASE, ANALYSIS, SHADOW, APPROVAL, RESULT)


def rollouts_root(data_root: str | None = None) -> str:
    """``<data_root>/rollouts``."""
    if data_root is None:
        from mlops_provider.settings import get_settings

        data_root = get_settings().data_root
    return f"{data_root.rstrip('/')}/{ROLLOUTS_ZONE}"


def rollout_id(model_name: str, version: str | int, started_at: str) -> str:
    """A rollout's id from its model, candidate version and start.

    The start is kept in the rollout's own state, so a resumed rollout finds the same id.
    """
    digest = hashlib.sha256(f"{model_name}\n{version}\n{started_at}".encode()).hexdigest()[:12]
    return f"v{safe_segment(str(version), 'model version')}-{digest}"


class RolloutRecorder:
    """Writes one rollout's events.

    :param model_name: the served model (one path segment).
    :param version: the candidate version being rolled out.
    :param started_at: when the rollout started (ISO), as the rollout's state keeps it.
    :param data_root: default ``[mlops] data_root``.
    """

    def __init__(self, model_name: str, version: str | int, started_at: str, data_root: str | None = None) -> None:
        self.model_name = safe_segment(model_name, "model name")
        self.version = str(version)
        self.started_at = started_at
        self.rollout_id = rollout_id(self.model_name, self.version, started_at)
        self.data_root = data_root

    @property
    def folder(self) -> str:
        """Where this rollout's events live."""
        return f"{rollouts_root(self.data_root)}/{self.model_name}/{self.rollout_id}"

    def record(self, kind: str, key: str | int, details: dict[str, Any]) -> dict[str, Any]:
        """Write (or rewrite) the event ``kind``/``key`` and return it."""
        from mlops_provider.storage import write_bytes_atomic

        if kind not in EVENT_KINDS:
            raise ValueError(f"Unknown rollout event kind {kind!r}; use one of {list(EVENT_KINDS)}.")
        event = {
            "schema": SCHEMA_VERSION,
            "model": self.model_name,
            "version": self.version,
            "rollout_id": self.rollout_id,
            "started_at": self.started_at,
            "kind": kind,
            "key": str(key),
            "at": datetime.now(UTC).isoformat(),
            "details": details,
        }
        body = json.dumps(event, sort_keys=True, default=str).encode()
        name = safe_segment(f"{kind}-{key}", "rollout event key")
        write_bytes_atomic(body, f"{self.folder}/{name}.json")
        log.info("Rollout %s of %s v%s: %s %s", self.rollout_id, self.model_name, self.version, kind, key)
        return json.loads(body)


def read_rollouts(model_name: str, *, limit: int = 10, data_root: str | None = None) -> list[dict[str, Any]]:
    """A model's latest rollouts, newest first.

    Each is ``{"rollout_id", "version", "started_at", "events"}`` with the events in the order they happened.
    """
    from mlops_provider.storage import storage_path

    root = storage_path(f"{rollouts_root(data_root)}/{safe_segment(model_name, 'model name')}")
    if not root.exists():
        return []
    rollouts = []
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        events = []
        for path in folder.iterdir():
            if path.name.endswith(".json"):
                try:
                    events.append(json.loads(path.read_bytes()))
                except ValueError:
                    log.warning("Skipping unreadable rollout event %s", path)
        if events:
            events.sort(key=lambda event: event["at"])
            first = events[0]
            rollouts.append(
                {
                    "rollout_id": first["rollout_id"],
                    "version": first["version"],
                    "started_at": first["started_at"],
                    "events": events,
                }
            )
    rollouts.sort(key=lambda rollout: rollout["started_at"], reverse=True)
    return rollouts[:limit]
