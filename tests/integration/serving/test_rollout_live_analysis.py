"""A canary that is worse only on live traffic is rolled back by the KServe rollout manager, its probes passing.

Real pieces: the rollout manager and the real ``KServeHook`` against the fake Kubernetes API server with the KServe
controller; two real model servers (stable version 1, canary version 2); a real Prometheus scraping both, which the
manager queries through the ``prometheus`` connection. The canary disagrees with stable only where the first
feature is below -0.25: the probes (synthetic rows in [0, 1]) never go there, users' requests often do. The test
plays Knative's traffic split: users' requests go half to each server while the manager analyses the step.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mlops_provider.serving.analysis import AnalysisConfig
from mlops_provider.serving.live_analysis import LiveAnalysisConfig
from mlops_provider.serving.records import read_rollouts
from mlops_provider.serving.rollout import KServeRolloutManager, RolloutPhase
from tests.fake_k8s.kserve import KServeController
from tests.fixtures.prometheus_server import start_prometheus
from tests.loopback import free_port
from tests.serving_support import (
    feature_columns,
    post_json,
    save_mlflow_model,
    start_server,
    train_live_only_worse_canary,
    wait_server,
)

pytestmark = pytest.mark.integration

MODEL = "live_rollout_model"
NAMESPACE = "live-analysis"
ISVC = "live-rollout-model"


@pytest.fixture
def live_rollout(serving_models, tmp_path, fake_k8s, monkeypatch):
    stable_model = serving_models["v1"]
    canary_uri = save_mlflow_model(train_live_only_worse_canary(stable_model.booster), tmp_path / "canary")
    servers = {}
    prometheus = None
    try:
        for version, uri in (("1", stable_model.uri), ("2", canary_uri)):
            servers[version] = start_server(
                [f"--storage_uri={uri}", f"--model_version={version}", "--access_log=false",
                 f"--prediction_log_uri={(tmp_path / 'predictions' / MODEL).as_uri()}"],
                tmp_path / f"server-{version}.log",
                MODEL,
            )  # fmt: skip
        for server in servers.values():
            wait_server(server)
        prometheus = start_prometheus([s.url for s in servers.values()], tmp_path / "prometheus")
        prometheus.wait_scraped(f'mlops_requests_total{{model_name="{MODEL}"}}', count=2)
        monkeypatch.setenv("AIRFLOW_CONN_ROLLOUT_PROMETHEUS", prometheus.connection_json())
        urls = {stable_model.uri: servers["1"].url, canary_uri: servers["2"].url}
        dead = f"http://127.0.0.1:{free_port()}"
        fake_k8s.add_controller(
            "inferenceservices", KServeController(url_for=lambda uri: urls.get(uri, dead), is_broken=lambda uri: False)
        )
        yield {"servers": servers, "stable_uri": stable_model.uri, "canary_uri": canary_uri, "k8s": fake_k8s}
    finally:
        if prometheus is not None:
            prometheus.stop()
        for server in servers.values():
            server.stop()


def users(servers: dict, requests: int, stop: threading.Event) -> threading.Thread:
    """Users' requests (first feature ~ N(0, 1)), split half and half between stable and canary."""
    rng = np.random.default_rng(11)
    rows = rng.normal(size=(requests, len(feature_columns()))).astype(np.float32)

    def run() -> None:
        for i, row in enumerate(rows):
            if stop.is_set():
                return
            server = servers["1"] if i % 2 == 0 else servers["2"]
            body = {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP32", "data": row.tolist()}]}
            post_json(f"{server.url}/v2/models/{MODEL}/infer", body)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_canary_worse_only_on_live_traffic_is_rolled_back_while_its_probes_pass(live_rollout, tmp_path):
    from mlops_provider.hooks.kserve import KServeHook
    from mlops_provider.serving.manifests import render_inference_service

    hook = KServeHook(kubernetes_conn_id=live_rollout["k8s"].conn_id, namespace=NAMESPACE)
    hook.create_inference_service(
        render_inference_service(
            MODEL, live_rollout["stable_uri"], name=ISVC, namespace=NAMESPACE, model_version="1", transformer=False
        )
    )
    data_root = str(tmp_path / "data")
    manager = KServeRolloutManager(
        hook,
        model_name=MODEL,
        analysis=AnalysisConfig(interval=0.5, iterations=2, failure_threshold=1, requests=5),
        progress_deadline=90,
        live_analysis=LiveAnalysisConfig(min_requests=40, prometheus_conn_id="rollout_prometheus"),
        live_source="prometheus",
        data_root=data_root,
    )
    state = manager.start(
        name=ISVC, version="2", storage_uri=live_rollout["canary_uri"], weights=[50],
        manifest_options={"transformer": False},
    )  # fmt: skip
    assert state.phase is RolloutPhase.CANARY and state.started_at
    stop = threading.Event()
    traffic = users(live_rollout["servers"], 240, stop)
    try:
        time.sleep(1.0)  # users are on both versions before the analysis starts
        state = manager.advance(state, manager.wait(state, poll_interval=0.2))
    finally:
        stop.set()
        traffic.join(30)

    assert state.phase is RolloutPhase.ROLLBACK and state.reason == "LiveAnalysisFailed", state.message
    assert all(check["ok"] for check in state.analysis["checks"])  # the probes passed
    live = state.analysis["live"]
    assert live["source"] == "prometheus" and live["verdict"] == "fail"
    divergence = next(m for m in live["metrics"] if m["name"] == "prediction_divergence")
    assert divergence["passed"] is False and divergence["value"] > 0.1
    assert next(m for m in live["metrics"] if m["name"] == "probes")["passed"] is True

    state = manager.advance(state, manager.wait(state, poll_interval=0.2))
    assert state.phase is RolloutPhase.ROLLED_BACK
    isvc = hook.get_inference_service(ISVC)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == live_rollout["stable_uri"]

    [rollout] = read_rollouts(MODEL, data_root=data_root)
    assert rollout["version"] == "2" and rollout["started_at"] == state.started_at
    kinds = {event["kind"]: event["details"] for event in rollout["events"]}
    assert kinds["analysis"]["verdict"] == "fail" and kinds["analysis"]["source"] == "prometheus"
    assert kinds["analysis"]["weight"] == 50 and kinds["analysis"]["window_seconds"] > 0
    assert kinds["result"]["outcome"] == "rolled_back"
