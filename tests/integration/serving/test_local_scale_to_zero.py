"""Scale to zero on the local backend (``serving.autoscaling.min_replicas: 0``), with real servers behind the real proxy.

The proxy stops an idle live slot and wakes it on the next request, as Knative's activator does; each wake's cold
start is recorded. One endpoint serves the whole module (each server start costs seconds), so the tests run in order:
never asleep with ``min_replicas >= 1``, asleep after a 1 s idle window, woken by one request, by many at once, a
failed wake, a rollout onto an asleep endpoint, and ``stop_all`` after the proxy was killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from mlops_provider.serving.analysis import AnalysisConfig
from mlops_provider.serving.local import PROXY_MARKER, SERVER_MARKER, BlueGreenRollout, LocalEndpoint
from mlops_provider.utils.process import process_alive
from tests.integration.serving.proxy_support import KeepAliveClient
from tests.serving_support import MODEL_NAME, free_port

pytestmark = pytest.mark.integration

IDLE_SECONDS = 1.0
PROBES = AnalysisConfig(interval=0.05, iterations=1, failure_threshold=1, requests=3, max_latency_ms=5000)
REQUEST_ID = "scale-to-zero-test"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory, serving_models):
    """The module's endpoint; ``endpoint.model_dir`` is a copy of version 1's model that a test may take away."""
    from mlops_provider.settings import get_settings, reset_settings

    root = tmp_path_factory.mktemp("scale-to-zero")
    saved = {k: os.environ.get(k) for k in ("AIRFLOW__MLOPS__LOCAL_ROOT", "AIRFLOW__MLOPS__LOCAL_SERVING_PORT")}
    os.environ["AIRFLOW__MLOPS__LOCAL_ROOT"] = str(root / "mlops")
    os.environ["AIRFLOW__MLOPS__LOCAL_SERVING_PORT"] = str(free_port())
    reset_settings()
    local = LocalEndpoint(settings=get_settings(), drain_seconds=0.2, startup_timeout=60)
    local.model_dir = root / "model-v1"  # type: ignore[attr-defined]
    shutil.copytree(serving_models["v1"].path, local.model_dir)  # type: ignore[attr-defined]
    try:
        yield local
    finally:
        local.stop_all()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()


def _row(serving_models) -> list[float]:
    return [float(x) for x in serving_models["v1"].X[0]]


def _infer(endpoint: LocalEndpoint, row: list[float]) -> tuple[int, bytes, float]:
    client = KeepAliveClient(endpoint.settings.local_serving_port, MODEL_NAME)
    try:
        return client.infer(row, request_id=REQUEST_ID)
    finally:
        client.close()


def _stats(endpoint: LocalEndpoint) -> dict:
    client = KeepAliveClient(endpoint.settings.local_serving_port, MODEL_NAME)
    try:
        return client.get_json("/-/proxy/stats")
    finally:
        client.close()


def _wait_asleep(endpoint: LocalEndpoint, timeout: float = 15.0) -> dict:
    slot = endpoint._read_state()["active"]
    deadline = time.monotonic() + timeout
    while endpoint.slot_status(slot) != "asleep":
        assert time.monotonic() < deadline, f"the live slot did not go to sleep: {_stats(endpoint)}"
        time.sleep(0.1)
    return slot


def _all_pids(endpoint: LocalEndpoint, slot: dict) -> list[int]:
    return [slot[c]["pid"] for c in ("predictor", "transformer") if slot.get(c)] + list(
        endpoint._woken_pids(slot).values()
    )


def test_min_replicas_1_never_sleeps(endpoint, serving_models):
    from mlops_provider.operators.kserve import ModelDeployOperator

    # The spec's autoscaling reaches the local rollout through the deploy operator's manifest_options.
    for options, expected in (({"min_replicas": 1}, None), ({"min_replicas": 0, "scale_to_zero_after": 1.5}, 1.5)):
        op = ModelDeployOperator(
            task_id="deploy", model_name=MODEL_NAME, candidate={}, backend="local", manifest_options=options
        )
        op.__dict__["settings"] = endpoint.settings
        assert op._local_rollout().scale_to_zero_after == expected

    endpoint.ensure_proxy()
    slot = endpoint.start_slot(MODEL_NAME, endpoint.model_dir.as_uri(), "1", prediction_log=False)
    endpoint.switch(slot)
    status, body, _ = _infer(endpoint, _row(serving_models))
    assert status == 200 and json.loads(body)["model_version"] == "1", body
    endpoint.awake_answer = body  # type: ignore[attr-defined]
    assert endpoint.traffic()["wake"]["sleep_after"] is None
    time.sleep(IDLE_SECONDS * 2.5)
    assert endpoint.slot_status(slot) == "awake" and process_alive(slot["predictor"]["pid"], SERVER_MARKER)
    stats = _stats(endpoint)
    assert stats["sleeps"] == 0 and stats["scale"]["state"] == "awake"


def test_an_idle_slot_sleeps_and_the_next_request_wakes_it(endpoint, serving_models):
    # Re-deploying the live version with min_replicas 0 changes its policy in place (nothing restarts).
    rollout = BlueGreenRollout(
        endpoint, model_name=MODEL_NAME, analysis=PROBES, progress_deadline=60, scale_to_zero_after=IDLE_SECONDS
    )
    result = rollout.deploy("1", endpoint.model_dir.as_uri())
    assert result["status"] == "promoted"
    slot = _wait_asleep(endpoint)
    assert not any(process_alive(pid, SERVER_MARKER) for pid in _all_pids(endpoint, slot))
    assert endpoint.active()["slot_id"] == slot["slot_id"]  # asleep, still the live version
    # What the proxy replays holds only what the slot adds to the inherited environment, never all of it.
    inherited = {"PATH", "HOME", "AIRFLOW_HOME"} & set(os.environ)
    assert inherited and all(not inherited & set(launch["env"]) for launch in slot["launch"]), slot["launch"]
    assert _stats(endpoint)["sleeps"] == 1

    status, body, waited = _infer(endpoint, _row(serving_models))
    assert status == 200, body
    assert body == endpoint.awake_answer  # byte for byte what the awake slot answered
    (wake,) = endpoint.cold_starts(MODEL_NAME)
    assert (wake["model"], wake["version"]) == (MODEL_NAME, "1")
    assert wake["trigger"]["path"] == f"/v2/models/{MODEL_NAME}/infer"
    # From the request's arrival to the slot being ready: all of the client's wait but the forwarded request.
    assert 0 < wake["cold_start_seconds"] <= waited and waited - wake["cold_start_seconds"] < 0.5
    print(f"cold start {wake['cold_start_seconds']:.2f} s, client waited {waited:.2f} s")
    stats = _stats(endpoint)
    assert stats["wakes"] == 1 and stats["last_cold_start_seconds"] == wake["cold_start_seconds"]
    assert endpoint.slot_status(slot) == "awake" and endpoint._woken_pids(slot)
    log = (endpoint.root / "logs" / "proxy.log").read_text()
    assert f"woke {MODEL_NAME} v1 in {wake['cold_start_seconds']:.2f} s" in log


def test_concurrent_requests_during_a_wake_trigger_one_wake(endpoint, serving_models):
    _wait_asleep(endpoint)
    before = len(endpoint.cold_starts())
    results: list[tuple[int, bytes, float]] = []
    row = _row(serving_models)
    threads = [threading.Thread(target=lambda: results.append(_infer(endpoint, row))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert [status for status, _, _ in results] == [200] * 8, results
    assert {json.loads(body)["model_version"] for _, body, _ in results} == {"1"}
    wakes = endpoint.cold_starts()
    assert len(wakes) == before + 1  # one wake for all of them
    assert wakes[-1]["trigger"]["held_requests"] > 1
    assert _stats(endpoint)["wakes"] == before + 1


def test_a_failed_wake_answers_503_with_the_reason_and_a_later_request_wakes_it(endpoint, serving_models):
    slot = _wait_asleep(endpoint)
    stats = _stats(endpoint)
    moved = endpoint.model_dir.with_name("model-v1-away")
    endpoint.model_dir.rename(moved)
    endpoint.wake_queue_limit = 2  # the third of three concurrent requests is refused rather than held
    endpoint.route_traffic(slot)
    try:
        results: list[tuple[int, bytes, float]] = []
        row = _row(serving_models)
        threads = [threading.Thread(target=lambda: results.append(_infer(endpoint, row))) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        errors = [(status, json.loads(body)) for status, body, _ in results]
        assert [status for status, _ in errors] == [503] * 3
        reasons = sorted(error["reason"] for _, error in errors)
        assert reasons == ["WakeFailed", "WakeFailed", "WakeQueueFull"]
        queue_full = next(error["error"] for _, error in errors if error["reason"] == "WakeQueueFull")
        assert "wake_queue_limit" in queue_full and "min_replicas: 1" in queue_full
        error = next(error["error"] for _, error in errors if error["reason"] == "WakeFailed")
        assert "could not be woken: the predictor exited during start-up" in error
        assert "blue-predictor.log" in error and "the next request tries" in error
        assert endpoint.slot_status(slot) == "asleep" and not endpoint._woken_pids(slot)
        time.sleep(0.5)  # no retry on its own
        after = _stats(endpoint)
        assert after["wake_failures"] == stats["wake_failures"] + 1 and after["wakes"] == stats["wakes"]
        assert after["wake_rejected"] == 1
        stats = after
    finally:
        moved.rename(endpoint.model_dir)
        endpoint.wake_queue_limit = 256
        endpoint.route_traffic(slot)

    # A server that is not ready within the wake timeout (the backend's startup_timeout) is stopped, not waited for.
    endpoint.startup_timeout = 0.2
    endpoint.route_traffic(slot)
    try:
        status, body, waited = _infer(endpoint, _row(serving_models))
        assert status == 503 and waited < 5, body
        assert "was not ready within the wake timeout; raise the local backend's startup_timeout" in body.decode()
        assert endpoint.slot_status(slot) == "asleep" and not endpoint._woken_pids(slot)
    finally:
        endpoint.startup_timeout = 60
        endpoint.route_traffic(slot)
    status, body, _ = _infer(endpoint, _row(serving_models))
    assert status == 200 and body == endpoint.awake_answer
    assert _stats(endpoint)["wakes"] == stats["wakes"] + 1


def test_a_rollout_onto_an_asleep_endpoint_replaces_it(endpoint, serving_models):
    asleep = _wait_asleep(endpoint)
    rollout = BlueGreenRollout(
        endpoint, model_name=MODEL_NAME, analysis=PROBES, progress_deadline=60, scale_to_zero_after=IDLE_SECONDS
    )
    result = rollout.deploy("2", serving_models["v2"].uri)
    assert result["status"] == "promoted" and result["revision"] == "green", result
    status, body, _ = _infer(endpoint, _row(serving_models))
    assert status == 200 and json.loads(body)["model_version"] == "2"
    assert not any(process_alive(pid, SERVER_MARKER) for pid in _all_pids(endpoint, asleep))
    assert endpoint.active()["model_version"] == "2"


def test_a_progressive_rollout_wakes_the_stable_and_keeps_it_awake_while_it_judges(endpoint, serving_models):
    from mlops_provider.serving.local import ProgressiveRollout, RolloutStep

    _wait_asleep(endpoint)
    row = _row(serving_models)
    seen: list[dict] = []

    def judge(**kwargs) -> dict:
        time.sleep(IDLE_SECONDS * 1.5)  # longer than the idle window: the stable must not sleep meanwhile
        answers = [_infer(endpoint, row) for _ in range(20)]
        seen.append({"sleep_after": endpoint.traffic()["wake"]["sleep_after"], "stats": _stats(endpoint),
                     "versions": {json.loads(body)["model_version"] for _, body, _ in answers},
                     "statuses": {status for status, _, _ in answers}})  # fmt: skip
        return {"verdict": "pass", "metrics": [], "source": "test", "message": "pass"}

    before = len(endpoint.cold_starts())
    rollout = ProgressiveRollout(
        endpoint, model_name=MODEL_NAME, analysis=PROBES, steps=[RolloutStep("canary", 50)], judge=judge,
        step_window=0, step_timeout=30, scale_to_zero_after=IDLE_SECONDS,
    )  # fmt: skip
    result = rollout.deploy("1", endpoint.model_dir.as_uri())
    assert result["status"] == "promoted", result
    (step,) = seen
    assert step["sleep_after"] is None and step["statuses"] == {200} and step["versions"] == {"1", "2"}
    assert step["stats"]["scale"]["state"] == "awake"
    assert len(endpoint.cold_starts()) == before + 1  # the stable was woken once, before the first step
    assert endpoint.traffic()["wake"]["sleep_after"] == IDLE_SECONDS  # after the rollout it may sleep again


def test_stop_all_stops_woken_processes_after_the_proxy_was_killed(endpoint, serving_models):
    slot = _wait_asleep(endpoint)
    status, _, _ = _infer(endpoint, _row(serving_models))
    assert status == 200
    woken = endpoint._woken_pids(slot)
    proxy = endpoint._read_state()["proxy"]["pid"]
    os.kill(proxy, signal.SIGKILL)
    time.sleep(0.2)
    assert woken and all(process_alive(pid, SERVER_MARKER) for pid in woken.values())  # orphans now

    endpoint.stop_all()
    assert not process_alive(proxy, PROXY_MARKER)
    assert not any(process_alive(pid, SERVER_MARKER) for pid in [*_all_pids(endpoint, slot), *woken.values()])
    assert not list(Path(endpoint.root / "pids").glob("*.pid"))
