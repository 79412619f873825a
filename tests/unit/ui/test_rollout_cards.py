"""The MLOps page's model card: rollouts read back from ``serving/records.py`` and rendered with their evidence."""

from __future__ import annotations

import time

from mlops_provider.serving.records import ANALYSIS, APPROVAL, PHASE, RESULT, SHADOW, RolloutRecorder
from mlops_provider.ui.app import canary_svg, live_svg, metric_deltas_html, render_model_card
from mlops_provider.ui.data import collect_cold_starts, collect_rollouts

XSS = "<img src=x onerror=alert(1)>"


def _step(step: int, weight: int | None, verdict: str, value: float) -> dict:
    return {"step": step, "weight": weight, "source": "prometheus", "window_seconds": 60.0, "verdict": verdict,
            "metrics": [{"name": "error_rate", "value": value, "threshold": 0.05, "passed": verdict == "pass",
                         "stable": 0.01, "canary": value}], "message": f"step {step} {XSS}"}  # fmt: skip


def _record(data_root: str) -> None:
    # The approval step records under the gate's decision time, before the rollout of the same version starts.
    approval = RolloutRecorder("m", "7", "2031-03-01T10:00:00+00:00", data_root=data_root)
    approval.record(APPROVAL, "decision", {"state": "approved", "url": "http://af/dags/t/runs/r/tasks/approve/required_actions", "by": "alice", "comment": None})  # fmt: skip
    time.sleep(0.01)
    rollout = RolloutRecorder("m", "7", "2031-03-01T11:00:00+00:00", data_root=data_root)
    rollout.record(PHASE, "canary-0", {"phase": "canary", "weight": 10, "message": "10% to v7"})
    rollout.record(SHADOW, "0", {"requests": 200, "agreement": 0.98, "divergence": 0.02, "latency_ratio": 1.1,
                                 "verdict": "pass", "message": "shadow ok"})  # fmt: skip
    rollout.record(ANALYSIS, 1, _step(1, 10, "pass", 0.01))
    rollout.record(PHASE, "canary-1", {"phase": "canary", "weight": 50, "message": "50% to v7"})
    rollout.record(ANALYSIS, 2, _step(2, 50, "fail", 0.2))
    # A newer candidate waits for a person.
    pending = RolloutRecorder("m", "8", "2031-03-02T09:00:00+00:00", data_root=data_root)
    pending.record(APPROVAL, "decision", {"state": "pending", "url": "http://af/dags/t/runs/r2/tasks/approve/required_actions?map_index=-1", "by": None, "comment": None})  # fmt: skip


def test_rollouts_are_summarised_newest_first_with_the_approval_on_its_rollout(tmp_path):
    _record(str(tmp_path))
    newest, older = collect_rollouts(str(tmp_path), "m")
    assert (newest["version"], newest["state"], newest["active"]) == ("8", "awaiting approval", True)
    assert older["version"] == "7" and older["approval"]["state"] == "approved" and older["approval"]["by"] == "alice"
    assert [s["step"] for s in older["analysis"]] == [1, 2] and older["weight"] == 50 and older["phase"] == "canary"
    assert [e["kind"] for e in older["timeline"]] == [APPROVAL, PHASE, SHADOW, ANALYSIS, PHASE, ANALYSIS]
    assert collect_rollouts(str(tmp_path), "../m") == [] and collect_rollouts(str(tmp_path), "other") == []

    RolloutRecorder("m", "7", "2031-03-01T11:00:00+00:00", data_root=str(tmp_path)).record(
        RESULT, "outcome", {"outcome": "rolled_back", "message": "error_rate 0.2 > 0.05"}
    )
    older = collect_rollouts(str(tmp_path), "m")[1]
    assert (older["state"], older["active"]) == ("rolled_back", False)


def test_the_card_shows_badges_pending_approval_rollout_timeline_and_charts(tmp_path):
    _record(str(tmp_path))
    rollouts = collect_rollouts(str(tmp_path), "m")
    model = {"name": "m", "aliases": {"champion": "6", "challenger": "8"}, "last_gate": None, "versions": []}
    gate = {"kind": "gate_decision", "outcome": "promote", "subject": "8", "reason": f"roc_auc ok; {XSS}",
            "details": {"candidate_metrics": {"roc_auc": 0.91, "log_loss": 0.30},
                        "champion_metrics": {"roc_auc": 0.89, "log_loss": 0.28}, "champion_version": "6"}}  # fmt: skip
    html = render_model_card(model, [], "/base", audit=[gate], live=[], rollouts=rollouts)
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "champion v6" in html and "challenger v8" in html and "approval pending" in html
    assert 'class="callout pending-approval" data-version="8"' in html
    assert 'href="http://af/dags/t/runs/r2/tasks/approve/required_actions?map_index=-1"' in html
    assert "Last gate decision (v8)" in html and "rollout v7: canary 50%" in html
    # Higher roc_auc is better, higher log_loss is worse.
    assert '<span class="better">+0.0200</span>' in html and '<span class="worse">+0.0200</span>' in html

    active_v7 = render_model_card(model, [], "", audit=[], live=[], rollouts=rollouts[1:])
    assert "Canary weight <strong>50%</strong>" in active_v7 and 'aria-label="canary weight 50%"' in active_v7
    assert active_v7.count('class="step"') == 2 and 'data-verdict="fail"' in active_v7
    assert "Shadow comparison on 200 requests: agreement 0.980" in active_v7
    assert 'data-state="approved"' in active_v7 and "by alice" in active_v7


def test_charts_and_deltas_say_nothing_without_data_and_escape_labels():
    assert canary_svg([]) == "" and live_svg([]) == "" and live_svg([{"day": "d", "value": None}]) == ""
    svg = canary_svg([_step(1, None, "inconclusive", 0.0)])
    assert "full traffic inconclusive" in svg and 'fill="#718096"' in svg
    rows = [{"day": "2031-05-01", "model_version": XSS, "metric": "roc_auc", "value": 0.8, "labeled_rows": 3}]
    assert XSS not in live_svg(rows) and "v&lt;img" in live_svg(rows)
    assert "No metrics recorded" in metric_deltas_html({}, None)
    assert '<td class="num delta"></td>' in metric_deltas_html({"r2": 0.5}, None)


def test_the_card_shows_the_last_cold_start_of_a_model_scaled_to_zero(tmp_path, monkeypatch):
    """The proxy's wake records (one file per wake) reach the card as a badge; none, no badge."""
    import json

    from mlops_provider.settings import get_settings, reset_settings

    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path))
    reset_settings()
    try:
        settings = get_settings()
        model = {"name": "m", "aliases": {"champion": "3"}, "last_gate": None, "versions": []}
        assert collect_cold_starts(settings, "m") == []
        assert "cold start" not in render_model_card(model, [], "", audit=[], live=[], rollouts=[], cold_starts=[])
        wakes = settings.serving_root / "wakes"
        wakes.mkdir(parents=True)
        for i, (model_name, seconds) in enumerate((("m", 2.5), ("m", 2.3125), ("other", 9.0))):
            record = {"model": model_name, "version": "3", "woken_at": f"2031-03-01T10:0{i}:00+00:00",
                      "cold_start_seconds": seconds, "trigger": {"method": "POST", "path": "/v2/models/m/infer"}}  # fmt: skip
            (wakes / f"{i}.json").write_text(json.dumps(record))
        cold_starts = collect_cold_starts(settings, "m")
        assert [w["cold_start_seconds"] for w in cold_starts] == [2.5, 2.3125]
        assert collect_cold_starts(settings, "../m") == []
        html = render_model_card(model, [], "", audit=[], live=[], rollouts=[], cold_starts=cold_starts)
        assert "cold start 2.31 s" in html and "2 wake(s) from scale to zero; last: v3 at 2031-03-01T10:01" in html
    finally:
        reset_settings()
