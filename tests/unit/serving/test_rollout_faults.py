"""Faults around a KServe rollout: retried first deploys, killed workers, stale readiness, the answering version."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_provider.exceptions import RolloutFailedError
from mlops_provider.serving.rollout import (
    KILLED_REASON,
    KServeRolloutManager,
    RolloutPhase,
    RolloutState,
)
from mlops_provider.serving.status import evaluate_readiness
from tests.serving_support import InMemoryKServeHook

NAME = "model-a"
OLD, NEW = "s3://models/model-a/1", "s3://models/model-a/2"
READY = {"status": "ready", "reason": "Ready", "message": "ok"}


@pytest.fixture
def verdicts(monkeypatch):
    """Scripted analysis verdicts; records the version each analysis expected."""
    from mlops_provider.serving import rollout

    class Script(list):
        expected: list[str | None]

    script = Script()
    expected: list[str | None] = []

    def analysis(*args, **kwargs):
        expected.append(kwargs.get("expected_version"))
        ok = script.pop(0)
        return {"passed": ok, "checks": [{"ok": ok}], "reason": "Passed" if ok else "AnalysisFailed", "message": "m"}

    monkeypatch.setattr(rollout, "run_analysis", analysis)
    script.expected = expected
    return script


def _hook(*uris_and_versions: tuple[str, str]) -> InMemoryKServeHook:
    from mlops_provider.serving.manifests import render_inference_service
    from tests.fake_k8s.kserve import KServeController

    hook = InMemoryKServeHook(
        KServeController(url_for=lambda uri: f"http://{uri.rsplit('/', 1)[-1]}.test", is_broken=lambda uri: False)
    )
    for uri, version in uris_and_versions:
        hook.create_inference_service(
            render_inference_service(
                "model-a", uri, name=NAME, namespace="models", model_version=version, transformer=False
            )
        )
    return hook


def _manager(hook) -> KServeRolloutManager:
    from mlops_provider.serving.analysis import AnalysisConfig

    return KServeRolloutManager(hook, model_name="model-a", analysis=AnalysisConfig(), progress_deadline=60)


def _start(hook, version="2", uri=NEW) -> RolloutState:
    return _manager(hook).start(
        name=NAME, version=version, storage_uri=uri, weights=[10], manifest_options={"transformer": False}
    )


def test_a_retried_first_deploy_analyses_again_and_never_promotes_blind(verdicts):
    """I1: the retry of a first deployment that failed its analysis finds the URI served at 100 % and analyses it.

    Already held after the serving refactor (the retry resumes the recorded FIRST phase); kept as a guard.
    """
    hook = _hook()
    state = _start(hook)
    assert state.phase is RolloutPhase.FIRST
    verdicts.append(False)
    with pytest.raises(RolloutFailedError, match="failed its analysis"):
        _manager(hook).advance(state, READY)
    retried = _start(hook)  # the task's retry: same version, the object already serves it
    assert retried.phase is RolloutPhase.FIRST and not retried.verified
    verdicts.append(True)
    done = _manager(hook).advance(retried, READY)
    assert done.phase is RolloutPhase.PROMOTED and done.verified
    assert RolloutState.from_inference_service(hook.get_inference_service(NAME)).verified


def test_serving_the_uri_without_a_recorded_passed_analysis_is_verified_not_promoted(verdicts):
    """I1: an InferenceService that serves the version with no recorded analysis (state lost, made by hand)."""
    hook = _hook((NEW, "2"))  # serves version 2, no rollout state on it
    state = _start(hook)
    assert state.phase is RolloutPhase.VERIFY  # was PROMOTE: champion moved with no analysis
    verdicts.append(False)
    with pytest.raises(RolloutFailedError, match="failed its analysis"):
        _manager(hook).advance(state, READY)
    recorded = RolloutState.from_inference_service(hook.get_inference_service(NAME))
    assert recorded.phase is RolloutPhase.VERIFY and not recorded.verified
    again = _start(hook)  # a retry analyses again
    assert again.phase is RolloutPhase.VERIFY
    verdicts.append(True)
    assert _manager(hook).advance(again, READY).verified
    assert verdicts.expected == ["2", "2"]  # every analysis checks the answering version
    # Now a passed analysis of version 2 is recorded: re-deploying it needs no new analysis.
    assert _start(hook).phase is RolloutPhase.PROMOTE


def test_abort_rolls_a_killed_canary_back_and_the_retry_starts_from_the_recorded_previous_version(verdicts):
    hook = _hook((OLD, "1"))
    canary = _start(hook)
    assert canary.phase is RolloutPhase.CANARY
    aborted = _manager(hook).abort(NAME)
    assert aborted.phase is RolloutPhase.ROLLBACK and aborted.reason == KILLED_REASON
    isvc = hook.get_inference_service(NAME)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == OLD
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0  # all traffic back on the previous revision
    retried = _start(hook)
    assert retried.phase is RolloutPhase.CANARY  # a fresh canary, not the resumed rollback
    assert retried.previous_uri == OLD and retried.previous_version == "1"
    assert retried.previous_model["storageUri"] == OLD  # never the canary's own spec
    verdicts.append(True)
    state = _manager(hook).advance(retried, READY)
    assert state.phase is RolloutPhase.PROMOTE
    assert _manager(hook).advance(state, READY).verified


def test_a_retry_after_a_kill_without_on_kill_never_records_the_canary_as_previous(verdicts):
    hook = _hook((OLD, "1"))
    _start(hook)  # the worker is SIGKILLed here: no on_kill ran, the canary is live
    retried = _start(hook)
    assert retried.phase is RolloutPhase.CANARY and retried.previous_model["storageUri"] == OLD
    verdicts.append(False)
    state = _manager(hook).advance(retried, READY)
    assert state.phase is RolloutPhase.ROLLBACK
    assert hook.get_inference_service(NAME)["spec"]["predictor"]["model"]["storageUri"] == OLD


def test_deploy_operator_on_kill_rolls_the_canary_back(verdicts):
    from mlops_provider.operators.kserve import ModelDeployOperator

    hook = _hook((OLD, "1"))
    _start(hook)
    op = ModelDeployOperator(task_id="deploy", model_name="model-a", candidate={}, backend="kserve")
    op.__dict__["rollout_manager"] = _manager(hook)
    op.inference_service_name = NAME
    op.on_kill()
    recorded = RolloutState.from_inference_service(hook.get_inference_service(NAME))
    assert recorded.phase is RolloutPhase.ROLLBACK and recorded.reason == KILLED_REASON
    assert hook.get_inference_service(NAME)["spec"]["predictor"]["model"]["storageUri"] == OLD


def test_raw_mode_readiness_waits_for_the_new_generation():
    """Raw mode: Ready=True of the old generation is not readiness of the new spec (already held after the refactor)."""
    isvc = {
        "metadata": {
            "name": NAME,
            "generation": 3,
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
        },
        "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert evaluate_readiness(isvc, 3)["state"] == "pending"
    isvc["status"]["observedGeneration"] = 3
    assert evaluate_readiness(isvc, 3)["state"] == "ready"


class _VersionedServer(BaseHTTPRequestHandler):
    version = "1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # model metadata: one input of width 3
        self._send({"name": "model-a", "inputs": [{"name": "input-0", "shape": [-1, 3], "datatype": "FP32"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send({"model_name": "model-a", "model_version": self.version, "outputs": [{"data": [0.5]}]})

    def _send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_analysis_fails_when_another_version_answers():
    """A canary URL that falls back to the main route answers with the old version: the analysis must fail."""
    import time

    from mlops_provider.serving.analysis import AnalysisConfig, run_analysis

    server = ThreadingHTTPServer(("127.0.0.1", 0), _VersionedServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    config = AnalysisConfig(interval=0.01, iterations=1, failure_threshold=1, requests=3, max_latency_ms=5000)
    try:
        wrong = run_analysis(url, "model-a", config, deadline=time.time() + 30, label="t", expected_version="2")
        right = run_analysis(url, "model-a", config, deadline=time.time() + 30, label="t", expected_version="1")
    finally:
        server.shutdown()
    assert not wrong["passed"] and "answered by model version ['1'], not 2" in wrong["message"]
    assert right["passed"]
