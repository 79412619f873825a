"""Rollout events: one file per event key, rewritten by a retry, read back per rollout in order."""

from __future__ import annotations

import pytest

from mlops_provider.exceptions import InvalidNameError
from mlops_provider.serving.records import ANALYSIS, PHASE, RolloutRecorder, read_rollouts


def test_events_are_keyed_and_read_per_rollout_newest_first(tmp_path):
    root = str(tmp_path)
    first = RolloutRecorder("churn", 3, "2026-11-01T00:00:00+00:00", data_root=root)
    first.record(PHASE, "canary-10", {"phase": "canary", "weight": 10, "message": "started"})
    first.record(ANALYSIS, 1, {"step": 1, "verdict": "inconclusive", "metrics": []})
    # A retried deploy rewrites step 1 instead of adding a second event.
    first.record(ANALYSIS, 1, {"step": 1, "verdict": "pass", "metrics": []})
    second = RolloutRecorder("churn", 4, "2026-11-02T00:00:00+00:00", data_root=root)
    second.record(PHASE, "canary-10", {"phase": "canary", "weight": 10, "message": "started"})

    rollouts = read_rollouts("churn", data_root=root)

    assert [r["version"] for r in rollouts] == ["4", "3"]
    events = rollouts[1]["events"]
    assert [(e["kind"], e["key"]) for e in events] == [(PHASE, "canary-10"), (ANALYSIS, "1")]
    assert events[1]["details"]["verdict"] == "pass"
    assert RolloutRecorder("churn", 3, "2026-11-01T00:00:00+00:00", data_root=root).rollout_id == first.rollout_id
    assert read_rollouts("other", data_root=root) == []


def test_unknown_kind_and_unsafe_names_are_refused(tmp_path):
    recorder = RolloutRecorder("churn", 1, "2026-11-01T00:00:00+00:00", data_root=str(tmp_path))
    with pytest.raises(ValueError, match="Unknown rollout event kind"):
        recorder.record("guess", 1, {})
    with pytest.raises(InvalidNameError, match="Invalid model name"):
        RolloutRecorder("../x", 1, "t", data_root=str(tmp_path))
