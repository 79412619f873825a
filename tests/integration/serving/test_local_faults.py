"""Faults on the local backend with real model servers: an unanalysed live slot, a killed deploy's candidate."""

from __future__ import annotations

import os

import pytest

from mlops_provider.exceptions import RolloutFailedError
from mlops_provider.serving.analysis import AnalysisConfig
from mlops_provider.serving.local import PROXY_MARKER, SERVER_MARKER, BlueGreenRollout, LocalEndpoint
from mlops_provider.utils.process import process_alive, start_process, stop_process
from tests.serving_support import MODEL_NAME, REPO_ROOT, SERVING_PYTHON, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def endpoint(tmp_path, monkeypatch):
    from mlops_provider.settings import get_settings, reset_settings

    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path / "mlops"))
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_SERVING_PORT", str(free_port()))
    reset_settings()
    local = LocalEndpoint(settings=get_settings())
    try:
        yield local
    finally:  # only the proxy: the live slot is the session's shared predictor server
        proxy = local._read_state().get("proxy")
        if proxy:
            stop_process(proxy["pid"], marker=PROXY_MARKER)
        reset_settings()


def _slot(server, version: str, uri: str, color: str = "blue") -> dict:
    return {
        "color": color,
        "model_name": MODEL_NAME,
        "model_version": version,
        "storage_uri": uri,
        "predictor": {"pid": server.process.pid, "http_port": server.http_port},
        "transformer": None,
        "upstream": f"127.0.0.1:{server.http_port}",
        "url": server.url,
    }


def test_a_live_slot_without_a_recorded_analysis_is_analysed_before_it_counts_as_promoted(
    endpoint, predictor_servers, serving_models
):
    """I1 (local): ``make serve`` (or an older provider) left a slot live with no analysis; deploying it analyses it.

    The state file claims version 2, but the server answers as version 1: the version check fails the analysis.
    """
    server = predictor_servers["v1"]
    rollout = BlueGreenRollout(
        endpoint,
        model_name=MODEL_NAME,
        analysis=AnalysisConfig(interval=0.05, iterations=2, failure_threshold=1, requests=3, max_latency_ms=5000),
        progress_deadline=60,
    )
    endpoint._update_state(active=_slot(server, "2", serving_models["v2"].uri))
    with pytest.raises(RolloutFailedError, match=r"answered by model version \['1'\], not 2"):
        rollout.deploy("2", serving_models["v2"].uri)  # was: "already live", promoted with no analysis
    assert not rollout.verified("2")

    endpoint._update_state(active=_slot(server, "1", serving_models["v1"].uri))
    assert not rollout.verified("1")
    result = rollout.deploy("1", serving_models["v1"].uri)
    assert result["status"] == "promoted" and result["analysis"]["passed"]
    assert rollout.verified("1")  # recorded in deployment.json: the next deploy of version 1 needs no analysis
    assert rollout.deploy("1", serving_models["v1"].uri)["analysis"] is None


def test_on_kill_stops_the_local_candidate_and_keeps_the_live_slot(
    endpoint, predictor_servers, serving_models, tmp_path
):
    from mlops_provider.operators.kserve import ModelDeployOperator

    live = predictor_servers["v1"]
    port = free_port()
    pid = start_process(
        [str(SERVING_PYTHON), "-m", SERVER_MARKER, "--component=predictor", f"--model_name={MODEL_NAME}",
         f"--storage_uri={serving_models['v2'].uri}", "--model_version=2", f"--http_port={port}",
         f"--grpc_port={free_port()}"],
        log_file=tmp_path / "candidate.log",
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "kserve")},
        cwd=REPO_ROOT,
    )  # fmt: skip
    candidate = {**_slot(live, "2", serving_models["v2"].uri, color="green"), "predictor": {"pid": pid}}
    endpoint._update_state(active=_slot(live, "1", serving_models["v1"].uri), candidate=candidate)
    op = ModelDeployOperator(task_id="deploy", model_name=MODEL_NAME, candidate={}, backend="local")
    op.__dict__["settings"] = endpoint.settings
    try:
        op.on_kill()
        assert not process_alive(pid, SERVER_MARKER)
        state = endpoint._read_state()
        assert state["candidate"] is None and state["aborted"]["model_version"] == "2"
        assert endpoint.active()["model_version"] == "1" and live.process.poll() is None
    finally:
        stop_process(pid, marker=SERVER_MARKER)
