"""Local progressive rollouts with real model servers behind the real proxy: shadow -> canary steps -> full.

Only the judge is a test double (a script of verdicts); while it judges a step it sends live requests through the
stable endpoint, so each step's routing is observed from a client's side.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mlops_provider.serving.analysis import AnalysisConfig
from mlops_provider.serving.local import (
    PROXY_MARKER,
    SERVER_MARKER,
    LocalEndpoint,
    ProgressiveRollout,
    RolloutStep,
    progressive_steps,
)
from mlops_provider.serving.records import read_rollouts
from mlops_provider.utils.process import process_alive, stop_process
from tests.integration.serving.proxy_support import KeepAliveClient
from tests.serving_support import MODEL_NAME, REPO_ROOT, free_port

pytestmark = pytest.mark.integration

PROBES = AnalysisConfig(interval=0.05, iterations=1, failure_threshold=1, requests=3, max_latency_ms=5000)
STEPS = progressive_steps("shadow", [10, 50, 100], shadow_percent=100)


@pytest.fixture
def endpoint(tmp_path, monkeypatch, predictor_servers):
    from mlops_provider.settings import get_settings, reset_settings

    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path / "mlops"))
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_SERVING_PORT", str(free_port()))
    reset_settings()
    local = LocalEndpoint(settings=get_settings(), drain_seconds=0.2)
    shared = {server.process.pid for server in predictor_servers.values()}
    try:
        yield local
    finally:  # every process this test started; never the session's shared predictors
        state = local._read_state()
        for key in ("candidate", "active"):
            slot = state.get(key)
            if slot and slot["predictor"]["pid"] not in shared:
                local.stop_slot(slot)
        if state.get("proxy"):
            stop_process(state["proxy"]["pid"], marker=PROXY_MARKER)
        reset_settings()


def _adopt_stable(endpoint: LocalEndpoint, server, version: str, uri: str) -> dict:
    """Make a session predictor the live (stable) slot, as an earlier deployment would have left it."""
    slot = {
        "color": "blue",
        "model_name": MODEL_NAME,
        "model_version": version,
        "storage_uri": uri,
        "predictor": {"pid": server.process.pid, "http_port": server.http_port},
        "transformer": None,
        "upstream": f"127.0.0.1:{server.http_port}",
        "url": server.url,
        "verified_version": version,
    }
    endpoint._update_state(active=slot)
    endpoint.route_traffic(slot)
    return slot


class ScriptedJudge:
    """Returns the scripted verdict of each step (by its 1-based number); sends live traffic while it judges."""

    def __init__(self, endpoint: LocalEndpoint, row: list[float], verdicts: dict[int, str], requests: int = 40):
        self.endpoint = endpoint
        self.row = row
        self.verdicts = verdicts
        self.requests = requests
        self.calls: list[dict] = []

    def __call__(self, **kwargs) -> dict:
        port = self.endpoint.settings.local_serving_port
        client = KeepAliveClient(port, MODEL_NAME)
        versions = []
        for _ in range(self.requests):
            status, body, _ = client.infer(self.row)
            assert status == 200, body
            versions.append(json.loads(body)["model_version"])
        client.close()
        step = next(i + 1 for i, s in enumerate(STEPS) if (s.mode, s.weight) == (kwargs["mode"], kwargs["weight"]))
        self.calls.append({**kwargs, "step": step, "versions": versions})
        verdict = self.verdicts.get(step, "pass")
        return {"verdict": verdict, "metrics": [], "source": "scripted", "message": f"scripted {verdict}"}


def _rollout(endpoint: LocalEndpoint, judge, **options) -> ProgressiveRollout:
    options.setdefault("step_window", 0.1)
    options.setdefault("step_timeout", 30.0)
    return ProgressiveRollout(
        endpoint, model_name=MODEL_NAME, analysis=PROBES, steps=STEPS, judge=judge, strategy="shadow", **options
    )


def _events(endpoint: LocalEndpoint) -> list[tuple[str, str, str | None]]:
    """``(kind, key, verdict or outcome)`` of the latest rollout's events, in order."""
    rollouts = read_rollouts(MODEL_NAME, data_root=endpoint.settings.data_root)
    return [
        (e["kind"], e["key"], e["details"].get("verdict") or e["details"].get("outcome")) for e in rollouts[0]["events"]
    ]


def _served_versions(endpoint: LocalEndpoint, row: list[float], n: int = 30) -> set[str]:
    client = KeepAliveClient(endpoint.settings.local_serving_port, MODEL_NAME)
    versions = set()
    for _ in range(n):
        status, body, _ = client.infer(row)
        assert status == 200, body
        versions.add(json.loads(body)["model_version"])
    client.close()
    return versions


def test_shadow_then_canary_steps_then_full_promotes(endpoint, serving_models):
    row = serving_models["v1"].X[0].tolist()
    v1, v2 = serving_models["v1"], serving_models["v2"]
    judge = ScriptedJudge(endpoint, row, verdicts={})
    rollout = _rollout(endpoint, judge)
    # The first deployment has nothing to compare against: blue/green with probes.
    first = rollout.deploy(v1.version, v1.uri)
    assert first["status"] == "promoted" and first["strategy"] == "blue_green" and judge.calls == []
    stable = endpoint.active()

    result = rollout.deploy(v2.version, v2.uri)

    assert result["status"] == "promoted" and result["strategy"] == "shadow", result
    assert result["previous_version"] == v1.version and result["revision"] == "green"
    assert [(c["mode"], c["weight"]) for c in judge.calls] == [("shadow", 100), ("canary", 10), ("canary", 50),
                                                               ("canary", 100)]  # fmt: skip
    for call in judge.calls:
        assert (call["stable_version"], call["candidate_version"]) == (v1.version, v2.version)
        assert call["start"].tzinfo is not None and call["end"] > call["start"]
    # What clients saw at each step: the shadow answers nobody; the canary shares grow; 100 % is the candidate.
    shadow_step, canary_10, canary_50, canary_100 = (set(c["versions"]) for c in judge.calls)
    assert shadow_step == {v1.version} and canary_100 == {v2.version}
    assert v2.version in canary_50 and v1.version in canary_50
    assert _served_versions(endpoint, row) == {v2.version}
    assert endpoint.traffic().get("canary") is None and endpoint.traffic().get("shadow") is None
    assert endpoint._read_state().get("rollout") is None
    assert not process_alive(stable["predictor"]["pid"], SERVER_MARKER)  # the old colour stopped after the drain
    assert rollout.verified(v2.version)
    assert _events(endpoint) == [
        ("phase", "started", None),
        ("phase", "step-1", None), ("shadow", "1", "pass"),
        ("phase", "step-2", None), ("analysis", "2", "pass"),
        ("phase", "step-3", None), ("analysis", "3", "pass"),
        ("phase", "step-4", None), ("analysis", "4", "pass"),
        ("result", "final", "promoted"),
    ]  # fmt: skip


def test_a_failed_step_rolls_back_and_the_stable_keeps_serving(endpoint, predictor_servers, serving_models):
    row = serving_models["v1"].X[0].tolist()
    v1, v2 = serving_models["v1"], serving_models["v2"]
    _adopt_stable(endpoint, predictor_servers["v1"], v1.version, v1.uri)
    judge = ScriptedJudge(endpoint, row, verdicts={2: "fail"})

    result = _rollout(endpoint, judge).deploy(v2.version, v2.uri)

    assert result["status"] == "rolled_back" and result["reason"] == "AnalysisFailed", result
    assert "Step 2 (canary at 10%) failed: scripted fail" in result["message"]
    assert [c["step"] for c in judge.calls] == [1, 2]
    assert _served_versions(endpoint, row, 60) == {v1.version}
    assert endpoint.traffic() == {"upstream": f"127.0.0.1:{predictor_servers['v1'].http_port}", "color": "blue",
                                  "version": v1.version, "model_version": v1.version}  # fmt: skip
    state = endpoint._read_state()
    assert state.get("candidate") is None and state.get("rollout") is None
    assert state["active"]["predictor"]["pid"] == predictor_servers["v1"].process.pid
    assert process_alive(predictor_servers["v1"].process.pid)
    assert not list((endpoint.root / "pids").glob("green-*.pid"))  # the candidate was stopped
    assert _events(endpoint) == [
        ("phase", "started", None),
        ("phase", "step-1", None), ("shadow", "1", "pass"),
        ("phase", "step-2", None), ("analysis", "2", "fail"),
        ("result", "final", "rolled_back"),
    ]  # fmt: skip


def test_an_inconclusive_step_waits_for_more_traffic_then_fails(endpoint, predictor_servers, serving_models):
    row = serving_models["v1"].X[0].tolist()
    v1, v2 = serving_models["v1"], serving_models["v2"]
    _adopt_stable(endpoint, predictor_servers["v1"], v1.version, v1.uri)
    judge = ScriptedJudge(endpoint, row, verdicts={1: "inconclusive"}, requests=2)
    started = time.monotonic()

    result = _rollout(endpoint, judge, step_window=0.3, step_timeout=2.0).deploy(v2.version, v2.uri)

    assert result["status"] == "rolled_back" and result["reason"] == "AnalysisInconclusive", result
    assert len(judge.calls) >= 3 and {c["step"] for c in judge.calls} == {1}  # never passed on to step 2
    # Each judgement widens the same window: more traffic, same start.
    assert len({c["start"] for c in judge.calls}) == 1
    assert [c["end"] for c in judge.calls] == sorted(c["end"] for c in judge.calls)
    assert time.monotonic() - started >= 2.0 - 0.3
    assert _served_versions(endpoint, row) == {v1.version}
    events = _events(endpoint)
    assert ("shadow", "1", "inconclusive") in events and events[-1] == ("result", "final", "rolled_back")


def test_too_little_live_traffic_lets_the_probes_decide_when_the_spec_says_so(
    endpoint, predictor_servers, serving_models
):
    """``live_analysis.on_inconclusive: probes`` (an endpoint with sporadic traffic): after ``inconclusive_wait`` an
    inconclusive step is decided by smoke probes of the candidate, recorded next to the inconclusive live verdict."""
    row = serving_models["v1"].X[0].tolist()
    v1, v2 = serving_models["v1"], serving_models["v2"]
    _adopt_stable(endpoint, predictor_servers["v1"], v1.version, v1.uri)
    judge = ScriptedJudge(endpoint, row, verdicts={1: "inconclusive", 2: "inconclusive"}, requests=2)
    started = time.monotonic()

    result = _rollout(
        endpoint, judge, step_window=0.3, step_timeout=30.0, inconclusive_wait=1.0, on_inconclusive="probes"
    ).deploy(v2.version, v2.uri)

    assert result["status"] == "promoted", result
    assert time.monotonic() - started < 30.0  # the wait, not the step's deadline
    steps = {s["step"]: s for s in result["analysis"]["steps"]}
    for step in (1, 2):
        assert steps[step]["verdict"] == "pass" and steps[step]["source"] == "probes", steps[step]
        assert steps[step]["live_verdict"] == "inconclusive"
        assert "Too little live traffic" in steps[step]["message"]
    assert steps[3]["verdict"] == "pass" and "live_verdict" not in steps[3]  # the judge's own verdict
    events = _events(endpoint)
    assert ("shadow", "1", "pass") in events and ("analysis", "2", "pass") in events
    assert events[-1] == ("result", "final", "promoted")
    assert _served_versions(endpoint, row) == {v2.version}


KILLED_DEPLOY = """
import json, sys, time
from pathlib import Path
from mlops_provider.serving.analysis import AnalysisConfig
from mlops_provider.serving.local import LocalEndpoint, ProgressiveRollout, progressive_steps

marker, version, uri = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

def judge(**kwargs):
    if kwargs["weight"] == 10 and kwargs["mode"] == "canary":
        marker.write_text("judging step 2")
        time.sleep(600)  # killed here
    return {"verdict": "pass", "metrics": [], "source": "scripted", "message": "ok"}

steps = progressive_steps("shadow", [10, 50, 100])
rollout = ProgressiveRollout(LocalEndpoint(), model_name=sys.argv[4], analysis=AnalysisConfig(), steps=steps,
                             judge=judge, strategy="shadow", step_window=0.1)
rollout.deploy(version, uri)
"""


def test_a_killed_deploy_leaves_the_stable_serving_and_a_retry_resumes_the_same_rollout(
    endpoint, predictor_servers, serving_models, tmp_path
):
    row = serving_models["v1"].X[0].tolist()
    v1, v2 = serving_models["v1"], serving_models["v2"]
    _adopt_stable(endpoint, predictor_servers["v1"], v1.version, v1.uri)
    endpoint.ensure_proxy()
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "providers/mlops/src"), str(REPO_ROOT)])}
    log = tmp_path / "deploy.log"
    with log.open("wb") as handle:
        deploy = subprocess.Popen(
            [sys.executable, "-c", KILLED_DEPLOY, str(marker), v2.version, v2.uri, MODEL_NAME],
            stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT), start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.time() + 180
        while not marker.exists():
            assert deploy.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        if deploy.poll() is None:
            os.killpg(deploy.pid, signal.SIGKILL)  # the worker dies: no on_kill, no cleanup
            deploy.wait(10)

    # Killed mid-canary: the stable colour is still the primary; the candidate answers its 10 %.
    assert endpoint.traffic()["upstream"] == f"127.0.0.1:{predictor_servers['v1'].http_port}"
    assert endpoint.traffic()["canary"]["weight"] == 10
    assert _served_versions(endpoint, row, 60) <= {v1.version, v2.version}
    state = endpoint._read_state()
    candidate_pid, started_at = state["candidate"]["predictor"]["pid"], state["rollout"]["started_at"]
    assert state["rollout"]["step"] == 1 and process_alive(candidate_pid, SERVER_MARKER)

    # The retry resumes at step 2 with the same candidate and rollout record; step 4 fails: clean rollback.
    judge = ScriptedJudge(endpoint, row, verdicts={4: "fail"}, requests=5)
    result = _rollout(endpoint, judge).deploy(v2.version, v2.uri)

    assert [c["step"] for c in judge.calls] == [2, 3, 4]
    assert result["status"] == "rolled_back" and result["reason"] == "AnalysisFailed"
    assert not process_alive(candidate_pid, SERVER_MARKER)
    assert _served_versions(endpoint, row) == {v1.version}
    rollouts = read_rollouts(MODEL_NAME, data_root=endpoint.settings.data_root)
    assert len(rollouts) == 1 and rollouts[0]["started_at"] == started_at  # one rollout, resumed in place
    assert _events(endpoint) == [
        ("phase", "started", None),
        ("phase", "step-1", None), ("shadow", "1", "pass"),
        ("phase", "step-2", None), ("analysis", "2", "pass"),
        ("phase", "step-3", None), ("analysis", "3", "pass"),
        ("phase", "step-4", None), ("analysis", "4", "fail"),
        ("result", "final", "rolled_back"),
    ]  # fmt: skip


def test_steps_reject_bad_modes_and_weights():
    with pytest.raises(ValueError, match="mode must be 'shadow' or 'canary'"):
        RolloutStep("mirror", 10)
    with pytest.raises(ValueError, match="weight must be between 1 and 100"):
        RolloutStep("canary", 0)
    with pytest.raises(ValueError, match="Progressive local strategies"):
        progressive_steps("blue_green", [10])
    assert progressive_steps("canary", [10, 50]) == [RolloutStep("canary", 10), RolloutStep("canary", 50)]


def test_without_a_judge_the_probe_analysis_judges_each_canary_step(endpoint, serving_models):
    v1, v2 = serving_models["v1"], serving_models["v2"]
    rollout = ProgressiveRollout(
        endpoint, model_name=MODEL_NAME, analysis=PROBES, steps=progressive_steps("canary", [50]), step_window=0.0,
        step_timeout=0.0, strategy="canary",
    )  # fmt: skip
    rollout.deploy(v1.version, v1.uri)

    result = rollout.deploy(v2.version, v2.uri)

    assert result["status"] == "promoted" and result["strategy"] == "canary", result
    (step,) = result["analysis"]["steps"]
    assert step["verdict"] == "pass" and step["source"] == "probes" and step["weight"] == 50
    assert {m["name"]: m["passed"] for m in step["metrics"]} == {"error_rate": True, "p99_latency_ms": True}
    assert _served_versions(endpoint, serving_models["v1"].X[0].tolist()) == {v2.version}
