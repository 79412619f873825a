"""The rollout manager's typed state: phases, transitions, and recovery from the InferenceService (not XCom)."""

from __future__ import annotations

import json

import pytest

from mlops_provider.exceptions import RolloutFailedError
from mlops_provider.lineage import MODEL_VERSION_ANNOTATION
from mlops_provider.serving.rollout import (
    ROLLOUT_STATE_ANNOTATION,
    TRANSITIONS,
    KServeRolloutManager,
    RolloutPhase,
    RolloutState,
    RolloutStrategy,
    canary_weights,
)
from tests.serving_support import InMemoryKServeHook

NAME = "model-a"
OLD, NEW = "s3://models/model-a/1", "s3://models/model-a/2"


def _state(**changes) -> RolloutState:
    values = {
        "name": NAME,
        "namespace": "models",
        "version": "2",
        "storage_uri": NEW,
        "phase": RolloutPhase.CANARY,
        "strategy": RolloutStrategy.CANARY,
        "weights": [10, 30],
    }
    return RolloutState(**{**values, **changes})


@pytest.fixture
def cluster(monkeypatch):
    """An in-memory InferenceService serving version 1 under the fake KServe controller, analyses scripted."""
    from mlops_provider.serving import rollout
    from mlops_provider.serving.manifests import render_inference_service
    from tests.fake_k8s.kserve import KServeController

    verdicts: list[bool] = []

    def analysis(*args, **kwargs):
        ok = verdicts.pop(0)
        return {
            "passed": ok,
            "checks": [{"ok": ok}] * 2,
            "reason": "Passed" if ok else "AnalysisFailed",
            "message": "m",
        }

    monkeypatch.setattr(rollout, "run_analysis", analysis)
    controller = KServeController(
        url_for=lambda uri: f"http://{uri.rsplit('/', 1)[-1]}.test", is_broken=lambda uri: False
    )
    hook = InMemoryKServeHook(controller)
    hook.create_inference_service(
        render_inference_service("model-a", OLD, name=NAME, namespace="models", model_version="1", transformer=False)
    )
    hook.verdicts = verdicts
    return hook


def _manager(hook, **kwargs) -> KServeRolloutManager:
    from mlops_provider.serving.analysis import AnalysisConfig

    return KServeRolloutManager(hook, model_name="model-a", analysis=AnalysisConfig(), progress_deadline=60, **kwargs)


def _start(manager, weights=(10,)):
    return manager.start(
        name=NAME, version="2", storage_uri=NEW, weights=list(weights), manifest_options={"transformer": False}
    )


def _recorded(hook) -> dict:
    return json.loads(hook.get_inference_service(NAME)["metadata"]["annotations"][ROLLOUT_STATE_ANNOTATION])


def test_only_promoted_and_rolled_back_are_terminal():
    assert {p for p in RolloutPhase if p.terminal} == {RolloutPhase.PROMOTED, RolloutPhase.ROLLED_BACK}
    assert all(not TRANSITIONS[p] for p in RolloutPhase if p.terminal)
    assert set(TRANSITIONS) == set(RolloutPhase)


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (RolloutPhase.FIRST, RolloutPhase.ROLLBACK),  # a first deployment has nothing to roll back to
        (RolloutPhase.ROLLBACK, RolloutPhase.PROMOTED),
        (RolloutPhase.PROMOTED, RolloutPhase.CANARY),
        (RolloutPhase.CANARY, RolloutPhase.PROMOTED),  # promotion goes through PROMOTE (100 %, Ready)
    ],
)
def test_transitions_outside_the_state_machine_are_refused(start, target):
    state = _state(phase=start)
    with pytest.raises(RolloutFailedError, match=f"cannot go from {start} to {target}") as err:
        state.move_to(target)
    assert err.value.reason == "InvalidTransition" and state.phase == start


def test_state_round_trips_through_the_annotation():
    state = _state(step=1, previous_model={"storageUri": OLD}, analysis={"passed": True}, generation=4)
    isvc = {
        "metadata": {"name": NAME, "generation": 7, "annotations": {ROLLOUT_STATE_ANNOTATION: state.to_annotation()}}
    }
    recovered = RolloutState.from_inference_service(isvc)
    assert recovered is not None
    assert recovered.phase is RolloutPhase.CANARY and recovered.strategy is RolloutStrategy.CANARY
    assert recovered.weight == 30 and recovered.previous_model == {"storageUri": OLD}
    assert recovered.generation == 7  # from the object, never from the annotation
    assert "generation" not in json.loads(state.to_annotation())


def test_unreadable_or_missing_state_is_none_and_unknown_keys_are_ignored():
    assert RolloutState.from_inference_service(None) is None
    assert RolloutState.from_inference_service({"metadata": {"annotations": {}}}) is None
    broken = {"metadata": {"annotations": {ROLLOUT_STATE_ANNOTATION: '{"phase": "sideways"}'}}}
    assert RolloutState.from_inference_service(broken) is None
    newer = json.loads(_state().to_annotation()) | {"added_later": 1}
    isvc = {"metadata": {"annotations": {ROLLOUT_STATE_ANNOTATION: json.dumps(newer)}}}
    assert RolloutState.from_inference_service(isvc).phase is RolloutPhase.CANARY


def test_canary_weights():
    assert canary_weights(10) == [10]
    assert canary_weights(10, 20, 50) == [10, 30, 50]
    assert canary_weights(10, 20, 40) == [10, 30]
    assert canary_weights(25, 10, 5) == [25]


def test_canary_step_and_promotion_are_recorded_on_the_inference_service(cluster):
    manager = _manager(cluster)
    state = _start(manager, weights=(10, 30))
    assert state.phase is RolloutPhase.CANARY and state.previous_version == "1" and state.previous_uri == OLD
    isvc = cluster.get_inference_service(NAME)
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert isvc["metadata"]["annotations"][MODEL_VERSION_ANNOTATION] == "2"
    assert _recorded(cluster)["phase"] == "canary" and _recorded(cluster)["step"] == 0

    cluster.verdicts.extend([True, True])
    state = manager.advance(state, manager.check(state))
    assert state.phase is RolloutPhase.CANARY and state.weight == 30
    assert cluster.get_inference_service(NAME)["spec"]["predictor"]["canaryTrafficPercent"] == 30
    # A new task (a retry, or the triggerer's callback) learns the step from the cluster alone.
    recovered = _manager(cluster).recover(NAME)
    assert recovered.phase is RolloutPhase.CANARY and recovered.step == 1
    assert recovered.generation == cluster.get_inference_service(NAME)["metadata"]["generation"]

    state = manager.advance(recovered, manager.check(recovered))
    assert state.phase is RolloutPhase.PROMOTE
    assert "canaryTrafficPercent" not in cluster.get_inference_service(NAME)["spec"]["predictor"]
    state = manager.advance(state, manager.check(state))
    assert state.phase is RolloutPhase.PROMOTED and _recorded(cluster)["phase"] == "promoted"
    assert [a["weight"] for a in _recorded(cluster)["analyses"]] == [10, 30]
    result = manager.result(state)
    assert result["status"] == "promoted" and result["strategy"] == "canary" and result["model_version"] == "2"
    assert result["traffic"] == {f"{NAME}-predictor-00002": 100}


def test_failed_analysis_rolls_back_and_records_why(cluster):
    manager = _manager(cluster)
    state = _start(manager)
    cluster.verdicts.append(False)
    state = manager.advance(state, manager.check(state))
    assert state.phase is RolloutPhase.ROLLBACK and state.reason == "AnalysisFailed"
    isvc = cluster.get_inference_service(NAME)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == OLD
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert isvc["metadata"]["annotations"][MODEL_VERSION_ANNOTATION] == "1"
    recorded = _recorded(cluster)
    assert recorded["phase"] == "rollback" and recorded["reason"] == "AnalysisFailed"
    state = manager.advance(manager.recover(NAME), {"status": "ready"})
    assert state.phase is RolloutPhase.ROLLED_BACK
    result = manager.result(state)
    assert result["status"] == "rolled_back" and result["previous_version"] == "1"
    assert result["revision"] == f"{NAME}-predictor-00001"


def test_not_ready_canary_rolls_back_and_a_failed_rollback_raises(cluster):
    manager = _manager(cluster)
    state = _start(manager)
    state = manager.advance(state, {"status": "timeout", "reason": "Deploying", "message": "pods pending"})
    assert state.phase is RolloutPhase.ROLLBACK and "progress deadline of 60 s" in state.message
    with pytest.raises(RolloutFailedError, match="did not complete"):
        manager.advance(state, {"status": "failed", "reason": "RevisionFailed", "message": "x"})


def test_a_retried_task_resumes_the_recorded_rollout_without_touching_the_spec(cluster):
    first = _start(_manager(cluster))
    generation = cluster.get_inference_service(NAME)["metadata"]["generation"]
    spec_patches = len([p for p in cluster.patches if "spec" in p])

    resumed = _start(_manager(cluster))  # the same version again: a retry after the worker died
    assert resumed.phase is RolloutPhase.CANARY and resumed.previous_uri == OLD
    assert resumed.deadline >= first.deadline
    assert cluster.get_inference_service(NAME)["metadata"]["generation"] == generation
    assert len([p for p in cluster.patches if "spec" in p]) == spec_patches
    assert _recorded(cluster)["deadline"] == resumed.deadline


def test_an_interrupted_rollout_of_another_version_keeps_the_last_good_version_to_return_to(cluster):
    _start(_manager(cluster))  # version 2 left half rolled out (canary)
    state = _manager(cluster).start(
        name=NAME,
        version="3",
        storage_uri="s3://models/model-a/3",
        weights=[10],
        manifest_options={"transformer": False},
    )
    assert state.previous_version == "1" and state.previous_uri == OLD
    assert state.previous_model["storageUri"] == OLD


def test_raw_mode_refuse_changes_nothing(monkeypatch):
    from mlops_provider.serving.manifests import render_inference_service

    hook = InMemoryKServeHook()
    hook.create_inference_service(
        render_inference_service(
            "model-a", OLD, name=NAME, namespace="models", deployment_mode="RawDeployment", transformer=False
        )
    )
    with pytest.raises(RolloutFailedError) as err:
        _start(_manager(hook, raw_deployment_strategy="refuse"))
    assert err.value.reason == "CanaryUnsupportedInRawDeployment" and hook.patches == []
