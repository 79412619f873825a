"""The deploy operator's local strategy options build the rollout they name; existing callers keep blue/green."""

from __future__ import annotations

import pytest

from mlops_provider.exceptions import MlopsError
from mlops_provider.operators.kserve import ModelDeployOperator
from mlops_provider.serving.local import BlueGreenRollout, ProgressiveRollout, RolloutStep


def _operator(**options) -> ModelDeployOperator:
    return ModelDeployOperator(task_id="deploy", model_name="some_model", candidate={}, **options)


def test_without_a_strategy_the_local_backend_stays_blue_green():
    rollout = _operator(backend="local")._local_rollout()
    assert type(rollout) is BlueGreenRollout


def test_shadow_strategy_runs_a_shadow_step_then_the_canary_weights_with_the_given_judge():
    def judge(**_):
        return {"verdict": "pass", "metrics": [], "source": "test", "message": ""}

    operator = _operator(
        backend="local", strategy="shadow", shadow_percent=50, canary_traffic_percent=10, step_weight=40,
        max_weight=100, step_window=5, step_timeout=60, judge=judge,
    )  # fmt: skip
    rollout = operator._local_rollout()
    assert isinstance(rollout, ProgressiveRollout)
    assert rollout.steps == [RolloutStep("shadow", 50), RolloutStep("canary", 10), RolloutStep("canary", 50),
                             RolloutStep("canary", 90)]  # fmt: skip
    assert rollout.judge is judge and (rollout.step_window, rollout.step_timeout) == (5, 60)
    assert rollout.strategy == "shadow"


def test_canary_strategy_has_no_shadow_step():
    rollout = _operator(backend="local", strategy="canary", canary_traffic_percent=20)._local_rollout()
    assert isinstance(rollout, ProgressiveRollout) and rollout.steps == [RolloutStep("canary", 20)]
    assert rollout.judge is None  # the probe analysis judges


def test_live_analysis_judges_local_steps_from_the_prediction_log_unless_prometheus_is_named():
    from mlops_provider.serving.live_analysis import judge_live_window

    rollout = _operator(backend="local", strategy="canary", live_analysis={"min_requests": 25})._local_rollout()
    assert rollout.judge.func is judge_live_window
    assert rollout.judge.keywords["source"] == "prediction_log"
    assert rollout.judge.keywords["config"].min_requests == 25
    with_prometheus = _operator(
        backend="local", strategy="shadow", live_analysis={}, prometheus_conn_id="prometheus_default"
    )._local_rollout()
    assert with_prometheus.judge.keywords["source"] is None  # Prometheus when it answers, else the log


def test_local_steps_take_the_live_analysis_inconclusive_policy():
    rollout = _operator(
        backend="local", strategy="canary", live_analysis={"on_inconclusive": "probes", "inconclusive_wait": 45}
    )._local_rollout()
    assert (rollout.on_inconclusive, rollout.inconclusive_wait) == ("probes", 45)
    default = _operator(backend="local", strategy="canary", live_analysis={})._local_rollout()
    assert (default.on_inconclusive, default.inconclusive_wait) == ("rollback", default.step_timeout)
    without_live = _operator(backend="local", strategy="canary")._local_rollout()
    assert without_live.on_inconclusive == "rollback"


def test_bad_options_name_the_setting():
    with pytest.raises(ValueError, match="strategy must be one of .*'mirror'"):
        _operator(strategy="mirror")
    with pytest.raises(ValueError, match="shadow_percent must be between 1 and 100, got 0"):
        _operator(strategy="shadow", shadow_percent=0)
    with pytest.raises(MlopsError, match="strategy='blue_green' runs on the local backend only"):
        _operator(backend="kserve", strategy="blue_green")._backend()
    with pytest.raises(MlopsError, match="strategy='shadow' on KServe is judged on the mirrored traffic"):
        _operator(backend="kserve", strategy="shadow")._backend()
    assert _operator(backend="kserve", strategy="canary")._backend() == "kserve"


def test_kserve_shadow_strategy_gives_the_rollout_manager_its_mirror_share():
    operator = _operator(backend="kserve", strategy="shadow", shadow_percent=25, live_analysis={"min_requests": 5})
    assert operator._backend() == "kserve"
    assert operator.rollout_manager.shadow_percent == 25
    assert operator.rollout_manager.live_analysis.min_requests == 5
    assert _operator(backend="kserve", strategy="canary", live_analysis={}).rollout_manager.shadow_percent is None
